//! Escaping of untrusted text (banners, certificates, names from files) before it reaches a
//! terminal or a document.

use std::borrow::Cow;

/// Characters that must never reach a terminal raw: C0 and C1 controls, DEL, and the Unicode
/// bidirectional overrides that can make text display differently from what it is.
fn is_dangerous(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}')
}

/// Escapes text for a terminal: control characters, DEL, C1 controls and bidi overrides
/// become `\n`, `\t`, `\r`, `\x1b` or `\u{202e}`; a backslash is doubled. Printable text is
/// returned unchanged without allocating.
pub fn terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| is_dangerous(c) || c == '\\') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\\' => out.push_str("\\\\"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if (c as u32) < 0x100 && is_dangerous(c) => out.push_str(&format!("\\x{:02x}", c as u32)),
        c if is_dangerous(c) => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        c => out.push(c),
    }
}

/// Escapes raw bytes (a banner) for a terminal: valid UTF-8 as [`terminal`], every invalid
/// byte as `\xNN`.
pub fn bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_escaped(&mut out, c);
        }
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// Escapes text for an XML attribute or text node. Characters XML 1.0 forbids even as
/// references (most C0 controls) are written as the visible text `\xNN`.
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
            c if xml_forbidden(c) => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

fn xml_forbidden(c: char) -> bool {
    let u = c as u32;
    (u < 0x20 && !matches!(c, '\t' | '\n' | '\r')) || u == 0xfffe || u == 0xffff
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
        assert_eq!(terminal("back\\slash"), "back\\\\slash");
        assert_eq!(terminal("caf\u{e9} \u{65e5}"), "caf\u{e9} \u{65e5}");
    }

    #[test]
    fn bytes_escape_invalid_utf8() {
        assert_eq!(bytes(b"SSH-2.0\xff\xfe\x1b]0;x\x07"), "SSH-2.0\\xff\\xfe\\x1b]0;x\\x07");
        let out = bytes(&[0u8, 0x9b, b'a']);
        assert!(out.chars().all(|c| !c.is_control()), "{out}");
    }

    #[test]
    fn xml_escapes_markup_and_forbidden_chars() {
        assert_eq!(xml("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(xml("x\x00y\x1bz\tok"), "x\\x00y\\x1bz\tok");
    }
}
