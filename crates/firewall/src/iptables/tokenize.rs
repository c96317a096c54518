//! Splitting a rule line into tokens as `iptables-restore` does.

/// A token of a rule line: its text (quotes removed), where it starts (byte offset in the
/// line) and ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Text, with quotes removed.
    pub text: String,
    /// Byte offset of the first character.
    pub start: usize,
    /// Byte offset after the last.
    pub end: usize,
}

/// Splits a line as iptables-restore does: on blanks, with double-quoted strings (`\"`
/// inside). An unterminated quote is an error at the byte offset of its opening quote.
pub fn tokenize(line: &str) -> std::result::Result<Vec<Token>, usize> {
    let b = line.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        // a token without quotes is its text as it stands
        let mut j = i;
        while j < b.len() && !b[j].is_ascii_whitespace() && b[j] != b'"' && b[j] != b'\'' {
            j += 1;
        }
        if j == b.len() || b[j].is_ascii_whitespace() {
            out.push(Token { text: line[start..j].to_string(), start, end: j });
            i = j;
            continue;
        }
        let mut text = String::new();
        while i < b.len() && !b[i].is_ascii_whitespace() {
            if b[i] == b'"' || b[i] == b'\'' {
                let quote = b[i];
                let open = i;
                i += 1;
                loop {
                    if i >= b.len() {
                        return Err(open);
                    }
                    if b[i] == b'\\' && i + 1 < b.len() && (b[i + 1] == quote || b[i + 1] == b'\\') {
                        text.push(b[i + 1] as char);
                        i += 2;
                        continue;
                    }
                    if b[i] == quote {
                        i += 1;
                        break;
                    }
                    let ch_len = line[i..].chars().next().map_or(1, char::len_utf8);
                    text.push_str(&line[i..i + ch_len]);
                    i += ch_len;
                }
            } else {
                let ch_len = line[i..].chars().next().map_or(1, char::len_utf8);
                text.push_str(&line[i..i + ch_len]);
                i += ch_len;
            }
        }
        out.push(Token { text, start, end: i });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn tokens_keep_quotes_and_spans() {
        let t = tokenize(r#"-A INPUT -m comment --comment "allow \"web\" in" -j ACCEPT"#).unwrap();
        assert_eq!(t[5].text, "allow \"web\" in");
        assert_eq!(t[1].text, "INPUT");
        assert_eq!(t[1].start, 3);
        assert!(tokenize("-A INPUT --comment \"open").is_err());
    }
}
