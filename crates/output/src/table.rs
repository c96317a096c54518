//! Aligned text tables for people, with colour only when asked (a TTY without `NO_COLOR`).

use std::io::{self, Write};

use unicode_width::UnicodeWidthStr;

use crate::escape;

/// A colour or weight for a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// No styling.
    #[default]
    Plain,
    /// Bold.
    Bold,
    /// Dimmed.
    Dim,
    /// Red (bad).
    Red,
    /// Bold red (worst).
    RedBold,
    /// Yellow (warning).
    Yellow,
    /// Green (good).
    Green,
    /// Cyan (informational).
    Cyan,
    /// Magenta.
    Magenta,
}

impl Style {
    fn ansi(self) -> &'static str {
        match self {
            Style::Plain => "",
            Style::Bold => "\x1b[1m",
            Style::Dim => "\x1b[2m",
            Style::Red => "\x1b[31m",
            Style::RedBold => "\x1b[1;31m",
            Style::Yellow => "\x1b[33m",
            Style::Green => "\x1b[32m",
            Style::Cyan => "\x1b[36m",
            Style::Magenta => "\x1b[35m",
        }
    }

    /// `text` wrapped in this style's escape codes when `color` is on.
    pub fn paint(self, text: &str, color: bool) -> String {
        if !color || self == Style::Plain {
            text.to_string()
        } else {
            format!("{}{text}\x1b[0m", self.ansi())
        }
    }
}

/// When to colour output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set or `TERM=dumb`.
    #[default]
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl ColorChoice {
    /// Whether to colour a stream that is (`is_tty`) or is not a terminal.
    pub fn enabled(self, is_tty: bool) -> bool {
        match self {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                is_tty
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                    && std::env::var("TERM").map_or(true, |t| t != "dumb")
            }
        }
    }
}

/// One cell: escaped text and a style.
#[derive(Debug, Clone, Default)]
pub struct Cell {
    text: String,
    style: Style,
}

impl Cell {
    /// A plain cell. The text is escaped for the terminal here, so untrusted text is safe.
    pub fn new(text: impl AsRef<str>) -> Cell {
        Cell { text: escape::terminal(text.as_ref()).into_owned(), style: Style::Plain }
    }

    /// A styled cell (text escaped as in [`Cell::new`]).
    pub fn styled(text: impl AsRef<str>, style: Style) -> Cell {
        Cell { text: escape::terminal(text.as_ref()).into_owned(), style }
    }

    /// The escaped text.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl<T: AsRef<str>> From<T> for Cell {
    fn from(t: T) -> Cell {
        Cell::new(t)
    }
}

/// Column alignment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Align {
    /// Left (text).
    #[default]
    Left,
    /// Right (numbers).
    Right,
}

/// A table: a header row and data rows, columns padded to their widest cell.
///
/// Cell texts live in one arena string (no allocation per cell), which keeps a 50,000-row
/// `portolan ls` fast and small. Text is escaped for the terminal as it is added.
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    text: String,
    ends: Vec<u32>,
    styles: Vec<Style>,
    widths: Vec<usize>,
}

fn width(s: &str) -> usize {
    if s.is_ascii() { s.len() } else { s.width() }
}

fn needs_escape(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == 0x7f || b >= 0x80) && escape::terminal(s) != s
}

impl Table {
    /// A table with these column headers (all left-aligned).
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(headers: I) -> Table {
        let headers: Vec<String> = headers.into_iter().map(Into::into).collect();
        let align = vec![Align::Left; headers.len()];
        let widths = headers.iter().map(|h| width(h)).collect();
        Table { headers, align, text: String::new(), ends: Vec::new(), styles: Vec::new(), widths }
    }

    /// Sets the alignment of column `i`.
    pub fn align(mut self, i: usize, a: Align) -> Table {
        if let Some(slot) = self.align.get_mut(i) {
            *slot = a;
        }
        self
    }

    /// Reserves room for `rows` rows of about `bytes_per_row` bytes.
    pub fn reserve(&mut self, rows: usize, bytes_per_row: usize) {
        self.text.reserve(rows * bytes_per_row);
        self.ends.reserve(rows * self.headers.len());
        self.styles.reserve(rows * self.headers.len());
    }

    fn col(&self) -> usize {
        self.ends.len() % self.headers.len().max(1)
    }

    fn finish_cell(&mut self, start: usize, style: Style) {
        if needs_escape(&self.text[start..]) {
            let escaped = escape::terminal(&self.text[start..]).into_owned();
            self.text.truncate(start);
            self.text.push_str(&escaped);
        }
        self.finish_escaped(start, style);
    }

    fn finish_escaped(&mut self, start: usize, style: Style) {
        let col = self.col();
        let w = width(&self.text[start..]);
        if let Some(m) = self.widths.get_mut(col) {
            *m = (*m).max(w);
        }
        self.ends.push(self.text.len() as u32);
        self.styles.push(style);
    }

    /// Adds one cell to the current row (rows fill left to right, then wrap).
    pub fn push(&mut self, text: &str, style: Style) {
        let start = self.text.len();
        self.text.push_str(text);
        self.finish_cell(start, style);
    }

    /// Adds one formatted cell without an intermediate string.
    pub fn push_fmt(&mut self, args: std::fmt::Arguments<'_>, style: Style) {
        use std::fmt::Write as _;
        let start = self.text.len();
        let _ = self.text.write_fmt(args);
        self.finish_cell(start, style);
    }

    /// Adds a row of cells; missing cells are blank, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<Cell>) {
        let n = self.headers.len();
        for (i, c) in cells.into_iter().enumerate() {
            if i < n {
                // Cell::new escaped the text already
                let start = self.text.len();
                self.text.push_str(&c.text);
                self.finish_escaped(start, c.style);
            }
        }
        while self.col() != 0 {
            self.push("", Style::Plain);
        }
    }

    /// Appends the rows of a table with the same columns (built, say, on another thread).
    pub fn append(&mut self, other: Table) {
        let base = self.text.len() as u32;
        self.text.push_str(&other.text);
        self.ends.extend(other.ends.iter().map(|e| e + base));
        self.styles.extend(other.styles);
        for (w, o) in self.widths.iter_mut().zip(other.widths) {
            *w = (*w).max(o);
        }
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.ends.len() / self.headers.len().max(1)
    }

    /// Whether there are no data rows.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Writes the table; the header in bold and cells in their styles when `color` is on.
    /// Trailing padding is never written.
    pub fn render(&self, out: &mut dyn Write, color: bool) -> io::Result<()> {
        let n = self.headers.len().max(1);
        let mut buf: Vec<u8> = Vec::with_capacity(self.text.len() + self.ends.len() * 4 + 256);
        let emit = |buf: &mut Vec<u8>, i: usize, text: &str, style: Style| {
            emit_cell(buf, &self.widths, &self.align, i, text, style, color);
        };
        for (i, h) in self.headers.iter().enumerate() {
            emit(&mut buf, i, h, Style::Bold);
        }
        let mut start = 0usize;
        for (k, &end) in self.ends.iter().enumerate() {
            let end = end as usize;
            emit(&mut buf, k % n, &self.text[start..end], self.styles[k]);
            start = end;
            if buf.len() > 1 << 20 {
                out.write_all(&buf)?;
                buf.clear();
            }
        }
        out.write_all(&buf)
    }

    /// The table as a string, without colour.
    pub fn to_plain_string(&self) -> String {
        let mut buf = Vec::new();
        let _ = self.render(&mut buf, false);
        String::from_utf8_lossy(&buf).into_owned()
    }
}

/// Writes one cell: padded to its column's width (left or right), styled when `color`; the
/// last column ends the line without trailing spaces.
fn emit_cell(
    buf: &mut Vec<u8>,
    widths: &[usize],
    align: &[Align],
    col: usize,
    text: &str,
    style: Style,
    color: bool,
) {
    let pad = widths.get(col).copied().unwrap_or(0).saturating_sub(width(text));
    let right = align.get(col) == Some(&Align::Right);
    let paint = color && style != Style::Plain;
    if right {
        buf.resize(buf.len() + pad, b' ');
    }
    if paint {
        buf.extend_from_slice(style.ansi().as_bytes());
    }
    buf.extend_from_slice(text.as_bytes());
    if paint {
        buf.extend_from_slice(b"\x1b[0m");
    }
    if col + 1 < widths.len() {
        let fill = if right { 2 } else { pad + 2 };
        buf.resize(buf.len() + fill, b' ');
    } else {
        while buf.last() == Some(&b' ') {
            buf.pop();
        }
        buf.push(b'\n');
    }
}

/// Column layout for a table written in two passes over the data without storing the cells:
/// [`Columns::measure`] every cell, then [`Columns::write_cell`] every cell. Memory stays flat
/// whatever the number of rows (`portolan ls` on 100k sockets).
#[derive(Debug, Clone)]
pub struct Columns {
    headers: Vec<String>,
    align: Vec<Align>,
    widths: Vec<usize>,
    scratch: String,
}

impl Columns {
    /// Columns with these headers, left-aligned.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(headers: I) -> Columns {
        let headers: Vec<String> = headers.into_iter().map(Into::into).collect();
        let widths = headers.iter().map(|h| width(h)).collect();
        let align = vec![Align::Left; headers.len()];
        Columns { headers, align, widths, scratch: String::new() }
    }

    /// Sets the alignment of column `i`.
    pub fn align(mut self, i: usize, a: Align) -> Columns {
        if let Some(slot) = self.align.get_mut(i) {
            *slot = a;
        }
        self
    }

    fn format(&mut self, args: std::fmt::Arguments<'_>) {
        use std::fmt::Write as _;
        self.scratch.clear();
        let _ = self.scratch.write_fmt(args);
        if needs_escape(&self.scratch) {
            self.scratch = escape::terminal(&self.scratch).into_owned();
        }
    }

    /// First pass for a plain string cell: widens column `col` to fit it.
    pub fn measure_str(&mut self, col: usize, text: &str) {
        let w = if needs_escape(text) { width(&escape::terminal(text)) } else { width(text) };
        if let Some(m) = self.widths.get_mut(col) {
            *m = (*m).max(w);
        }
    }

    /// Second pass for a plain string cell.
    pub fn write_str(&mut self, buf: &mut Vec<u8>, col: usize, text: &str, style: Style, color: bool) {
        if needs_escape(text) {
            let e = escape::terminal(text).into_owned();
            self.emit(buf, col, &e, style, color);
        } else {
            self.emit(buf, col, text, style, color);
        }
    }

    /// First pass: widens column `col` to fit the cell.
    pub fn measure(&mut self, col: usize, args: std::fmt::Arguments<'_>) {
        self.format(args);
        let w = width(&self.scratch);
        if let Some(m) = self.widths.get_mut(col) {
            *m = (*m).max(w);
        }
    }

    fn emit(&self, buf: &mut Vec<u8>, col: usize, text: &str, style: Style, color: bool) {
        emit_cell(buf, &self.widths, &self.align, col, text, style, color);
    }

    /// Writes the header row (bold when `color`).
    pub fn write_header(&self, buf: &mut Vec<u8>, color: bool) {
        for (i, h) in self.headers.iter().enumerate() {
            self.emit(buf, i, h, Style::Bold, color);
        }
    }

    /// Second pass: writes one cell, padded; the last column ends the line.
    pub fn write_cell(
        &mut self,
        buf: &mut Vec<u8>,
        col: usize,
        args: std::fmt::Arguments<'_>,
        style: Style,
        color: bool,
    ) {
        self.format(args);
        let text = std::mem::take(&mut self.scratch);
        self.emit(buf, col, &text, style, color);
        self.scratch = text;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_untrusted_text_is_escaped() {
        let mut t = Table::new(["PORT", "STATE", "SERVICE"]);
        t.row(vec!["22/tcp".into(), Cell::styled("open", Style::Green), "ssh".into()]);
        t.row(vec!["3389/tcp".into(), "closed".into(), "evil\x1b[2J".into()]);
        let s = t.to_plain_string();
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "PORT      STATE   SERVICE");
        assert_eq!(lines[1], "22/tcp    open    ssh");
        assert_eq!(lines[2], "3389/tcp  closed  evil\\x1b[2J");
        assert!(!s.contains('\x1b'));
        let mut colored = Vec::new();
        t.render(&mut colored, true).unwrap();
        assert!(String::from_utf8(colored).unwrap().contains("\x1b[32mopen\x1b[0m"));
    }

    #[test]
    fn cells_pushed_one_by_one_wrap_into_rows() {
        let mut t = Table::new(["A", "B"]).align(1, Align::Right);
        t.push("x", Style::Plain);
        t.push_fmt(format_args!("{}", 10), Style::Plain);
        t.push("long\x1b", Style::Plain);
        t.push("2", Style::Plain);
        assert_eq!(t.len(), 2);
        assert_eq!(t.to_plain_string(), "A          B\nx         10\nlong\\x1b   2\n");
    }

    #[test]
    fn two_pass_columns_match_the_table() {
        let rows = [("22/tcp", "open"), ("3389/tcp", "evil\x1b[2J")];
        let mut c = Columns::new(["PORT", "STATE"]);
        for (a, b) in rows {
            c.measure(0, format_args!("{a}"));
            c.measure(1, format_args!("{b}"));
        }
        let mut buf = Vec::new();
        c.write_header(&mut buf, false);
        for (a, b) in rows {
            c.write_cell(&mut buf, 0, format_args!("{a}"), Style::Plain, false);
            c.write_cell(&mut buf, 1, format_args!("{b}"), Style::Plain, false);
        }
        let mut t = Table::new(["PORT", "STATE"]);
        for (a, b) in rows {
            t.row(vec![a.into(), b.into()]);
        }
        assert_eq!(String::from_utf8(buf).unwrap(), t.to_plain_string());
    }

    #[test]
    fn wide_characters_count_by_display_width() {
        let mut t = Table::new(["A", "B"]);
        t.row(vec!["\u{65e5}\u{672c}".into(), "x".into()]);
        t.row(vec!["ab".into(), "y".into()]);
        let s = t.to_plain_string();
        assert!(s.lines().nth(1).unwrap().ends_with("  x"));
        assert_eq!(s.lines().nth(1).unwrap().width(), s.lines().nth(2).unwrap().width());
    }
}
