//! The one set of rules for untrusted text (banners, certificate fields, process names, log
//! lines, names read from files) on its way to a terminal, an XML document or a spreadsheet.
//!
//! Every escape here is idempotent: escaping text a second time changes nothing, so a value a
//! source has already cleaned (a banner stored as `SSH-2.0\x0d\x0a`) is never escaped twice by
//! a sink. That is why a backslash is kept as it is: `\x1b` in the output is either the escaped
//! ESC byte or those four characters sent by the peer, and neither can move the cursor.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Characters that must never reach a terminal raw: C0 and C1 controls, DEL, and the Unicode
/// bidirectional overrides and marks that can make text display differently from what it is.
pub fn is_dangerous(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x100 && is_dangerous(c) => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if is_dangerous(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

/// Text for a terminal: control characters, DEL, C1 controls and bidi overrides become `\n`,
/// `\t`, `\r`, `\x1b` or `\u{202e}`. Printable text is returned as it is, without allocating.
pub fn terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_dangerous) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// Text for a terminal, at most `max_chars` characters of the input (then `…`).
pub fn terminal_bounded(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars * 4));
    for (i, c) in s.chars().enumerate() {
        if i >= max_chars {
            out.push('…');
            break;
        }
        push_escaped(&mut out, c);
    }
    out
}

/// Raw bytes (a banner) as terminal-safe text: valid UTF-8 as [`terminal`], every invalid
/// byte as `\xNN`; at most `max` bytes of the input are read.
pub fn bytes(b: &[u8], max: usize) -> String {
    let b = &b[..b.len().min(max)];
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_escaped(&mut out, c);
        }
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// Text for an XML attribute or text node. Characters XML 1.0 forbids even as references
/// (most C0 controls) are written as the visible text `\xNN`.
pub fn xml(s: &str) -> Cow<'_, str> {
    let needs = s.chars().any(|c| matches!(c, '&' | '<' | '>' | '"' | '\'') || xml_forbidden(c));
    if !needs {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if xml_forbidden(c) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn xml_forbidden(c: char) -> bool {
    let u = c as u32;
    (u < 0x20 && !matches!(c, '\t' | '\n' | '\r')) || u == 0xfffe || u == 0xffff
}

/// A CSV cell that is safe to open in a spreadsheet and to `cat` on a terminal: control
/// characters escaped as for [`terminal`], and a cell a spreadsheet would run as a formula
/// (starting with `=`, `+`, `-` or `@`, OWASP's list) prefixed with `'`. A negative number
/// (`-1`) stays a number.
pub fn csv_cell(s: &str) -> Cow<'_, str> {
    let formula =
        matches!(s.as_bytes().first(), Some(b'=' | b'+' | b'-' | b'@')) && s[1..].parse::<f64>().is_err();
    let cell = terminal(s);
    if formula { Cow::Owned(format!("'{cell}")) } else { cell }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_escapes_controls_and_keeps_text() {
        assert!(matches!(terminal("OpenSSH 9.2p1"), Cow::Borrowed(_)));
        assert_eq!(terminal("a\x1b[31mred\x07"), "a\\x1b[31mred\\x07");
        assert_eq!(terminal("line\r\nnext"), "line\\r\\nnext");
        assert_eq!(terminal("\u{9b}2J"), "\\x9b2J");
        assert_eq!(terminal("evil\u{202e}txt"), "evil\\u{202e}txt");
        assert_eq!(terminal("back\\slash"), "back\\slash");
        assert_eq!(terminal("caf\u{e9} \u{65e5}"), "caf\u{e9} \u{65e5}");
    }

    #[test]
    fn escaping_twice_changes_nothing() {
        for s in ["a\x1b[2J\x07", "x\r\n\t\u{202e}\u{85}", "\\x1b plain", "SSH-2.0\\x0d\\x0a"] {
            let once = terminal(s).into_owned();
            assert_eq!(terminal(&once), once);
            let b = bytes(s.as_bytes(), 1024);
            assert_eq!(terminal(&b), b);
        }
    }

    #[test]
    fn bytes_escape_invalid_utf8_and_stop_at_max() {
        assert_eq!(bytes(b"SSH-2.0\xff\xfe\x1b]0;x\x07", 64), "SSH-2.0\\xff\\xfe\\x1b]0;x\\x07");
        assert_eq!(bytes(b"ok\xff\x00\r\n", 64), "ok\\xff\\x00\\r\\n");
        assert_eq!(bytes(b"abcdef", 3), "abc");
        let out = bytes(&[0u8, 0x9b, b'a'], 16);
        assert!(out.chars().all(|c| !c.is_control()), "{out}");
    }

    #[test]
    fn bounded_text_is_cut_with_an_ellipsis() {
        assert_eq!(terminal_bounded(&"x".repeat(600), 512).chars().count(), 513);
        assert_eq!(terminal_bounded("a\x1bb", 512), "a\\x1bb");
    }

    #[test]
    fn xml_escapes_markup_and_forbidden_chars() {
        assert_eq!(xml("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(xml("x\x00y\x1bz\tok"), "x\\x00y\\x1bz\tok");
    }

    #[test]
    fn csv_cells_are_neither_formulas_nor_escapes() {
        assert_eq!(csv_cell("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_cell("+1+cmd"), "'+1+cmd");
        assert_eq!(csv_cell("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_cell("-2+3"), "'-2+3");
        assert_eq!(csv_cell("-1"), "-1");
        assert_eq!(csv_cell("nginx\x1b]0;pwned\x07"), "nginx\\x1b]0;pwned\\x07");
        assert!(matches!(csv_cell("sshd"), Cow::Borrowed(_)));
    }
}

/// `text` with the password of every URL in it (`scheme://user:PASSWORD@host`) replaced by
/// `***`: command lines and locations that reach a report or a log keep the user and host.
pub fn redact_urls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // the authority ends at the first '/', whitespace or the end
        let end = tail.find(|c: char| c == '/' || c.is_whitespace()).unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon]);
                out.push_str(":***");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod redact_tests {
    use super::redact_urls;

    #[test]
    fn passwords_go_users_and_hosts_stay() {
        assert_eq!(
            redact_urls("portolan report --db postgres://scan:s3cr%40t@db.lab:5432/p -o r.html"),
            "portolan report --db postgres://scan:***@db.lab:5432/p -o r.html"
        );
        assert_eq!(redact_urls("--db=postgresql://u@h/db"), "--db=postgresql://u@h/db");
        assert_eq!(redact_urls("no url here"), "no url here");
        assert_eq!(redact_urls("a://x:y@h b://p:q@r/s"), "a://x:***@h b://p:***@r/s");
    }
}
