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
#[derive(Debug, Clone, Default)]
pub struct Table {
    headers: Vec<String>,
    align: Vec<Align>,
    rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A table with these column headers (all left-aligned).
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(headers: I) -> Table {
        let headers: Vec<String> = headers.into_iter().map(Into::into).collect();
        let align = vec![Align::Left; headers.len()];
        Table { headers, align, rows: Vec::new() }
    }

    /// Sets the alignment of column `i`.
    pub fn align(mut self, i: usize, a: Align) -> Table {
        if let Some(slot) = self.align.get_mut(i) {
            *slot = a;
        }
        self
    }

    /// Adds a row; missing cells are blank, extra cells are dropped.
    pub fn row(&mut self, cells: Vec<Cell>) {
        let mut cells = cells;
        cells.resize(self.headers.len(), Cell::default());
        self.rows.push(cells);
    }

    /// Number of data rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no data rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Writes the table; the header in bold and cells in their styles when `color` is on.
    /// Trailing padding is never written.
    pub fn render(&self, out: &mut dyn Write, color: bool) -> io::Result<()> {
        let n = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.width()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                widths[i] = widths[i].max(c.text.width());
            }
        }
        let line = |out: &mut dyn Write, cells: Vec<(&str, Style)>| -> io::Result<()> {
            let mut s = String::new();
            for (i, (text, style)) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(text.width());
                let last = i + 1 == n;
                if self.align[i] == Align::Right {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(&style.paint(text, color));
                } else {
                    s.push_str(&style.paint(text, color));
                    if !last {
                        s.push_str(&" ".repeat(pad));
                    }
                }
                if !last {
                    s.push_str("  ");
                }
            }
            writeln!(out, "{}", s.trim_end())
        };
        line(out, self.headers.iter().map(|h| (h.as_str(), Style::Bold)).collect())?;
        for r in &self.rows {
            line(out, r.iter().map(|c| (c.text.as_str(), c.style)).collect())?;
        }
        Ok(())
    }

    /// The table as a string, without colour.
    pub fn to_plain_string(&self) -> String {
        let mut buf = Vec::new();
        let _ = self.render(&mut buf, false);
        String::from_utf8_lossy(&buf).into_owned()
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
    fn wide_characters_count_by_display_width() {
        let mut t = Table::new(["A", "B"]);
        t.row(vec!["\u{65e5}\u{672c}".into(), "x".into()]);
        t.row(vec!["ab".into(), "y".into()]);
        let s = t.to_plain_string();
        assert!(s.lines().nth(1).unwrap().ends_with("  x"));
        assert_eq!(s.lines().nth(1).unwrap().width(), s.lines().nth(2).unwrap().width());
    }
}
