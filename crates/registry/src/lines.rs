//! Lines of nmap's data files, found with memchr: `str::lines` and `split('\n')` look for the
//! newline character by character, and that search was most of reading those files.

/// Where each line of `text` starts and ends (its newline excluded). The piece after the last
/// newline is a line too, empty when the text ends with one.
pub(crate) fn spans(text: &[u8]) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut from = 0;
    memchr::memchr_iter(b'\n', text).chain(std::iter::once(text.len())).map(move |end| {
        let start = from;
        from = end + 1;
        (start, end)
    })
}

/// The lines of `text` as bytes.
pub(crate) fn of_bytes(text: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    spans(text).map(move |(start, end)| &text[start..end])
}

/// The lines of `text`. A newline is a character of its own, so every line is whole characters.
pub(crate) fn of_text(text: &str) -> impl Iterator<Item = &str> + '_ {
    spans(text.as_bytes()).map(move |(start, end)| text.get(start..end).unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_split_on_newlines() {
        for text in ["", "\n", "a", "a\n", "a\nb", "\n\nb\n", "é\nü\r\n"] {
            let want: Vec<&str> = text.split('\n').collect();
            assert_eq!(of_text(text).collect::<Vec<_>>(), want, "{text:?}");
            let bytes: Vec<&[u8]> = want.iter().map(|l| l.as_bytes()).collect();
            assert_eq!(of_bytes(text.as_bytes()).collect::<Vec<_>>(), bytes, "{text:?}");
        }
    }
}
