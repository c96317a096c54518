//! The parts of an HTTP response a person wants to see: status, server, title, redirect.

use serde::Serialize;

/// What an HTTP answer showed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub struct HttpInfo {
    /// Status code.
    pub status: u16,
    /// `Server:` header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// The page `<title>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `Location:` of a redirect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
}

/// Parses an HTTP/1.x response head (and the title from whatever body arrived).
pub fn parse(resp: &[u8]) -> Option<HttpInfo> {
    let rest = resp.strip_prefix(b"HTTP/1.")?;
    let status: u16 = std::str::from_utf8(rest.get(2..5)?).ok()?.parse().ok()?;
    let head_end = find(resp, b"\r\n\r\n").unwrap_or(resp.len());
    let head = String::from_utf8_lossy(&resp[..head_end]);
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| crate::clean(v.trim()))
        })
    };
    let body = resp.get(head_end..).unwrap_or(&[]);
    Some(HttpInfo { status, server: header("server"), title: title(body), location: header("location") })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn title(body: &[u8]) -> Option<String> {
    let lower: Vec<u8> = body.iter().map(u8::to_ascii_lowercase).collect();
    let open = find(&lower, b"<title")?;
    let start = open + lower[open..].iter().position(|b| *b == b'>')? + 1;
    let end = start + find(&lower[start..], b"</title")?;
    let text = String::from_utf8_lossy(&body[start..end]);
    let collapsed: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let short: String = collapsed.chars().take(160).collect();
    (!short.is_empty()).then(|| crate::clean(&short))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn status_server_title_location() {
        let r = b"HTTP/1.1 301 Moved\r\nServer: nginx/1.22.1\r\nLocation: https://x/\r\n\r\n<html><TITLE>\n Moved \x1b[31m </title>";
        let h = parse(r).unwrap();
        assert_eq!(h.status, 301);
        assert_eq!(h.server.as_deref(), Some("nginx/1.22.1"));
        assert_eq!(h.location.as_deref(), Some("https://x/"));
        assert_eq!(h.title.as_deref(), Some("Moved \\x1b[31m"));
        assert!(parse(b"SSH-2.0-x").is_none());
    }
}
