//! A small JSON reader that keeps where every value starts (line and column), so that a
//! finding or an error about an nftables or AWS rule can name its place in the file.
//! `serde_json::Value` forgets positions; this keeps them, with a bounded nesting depth.

use std::fmt;
use std::sync::Arc;

use crate::model::Location;

/// Where a value starts in the text. The reader does not know the file's name, and every
/// value has a position: a [`Location`] (which names the file) is made from it only for the
/// values a rule or an error is about ([`Pos::in_file`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    /// Line, from 1.
    pub line: u32,
    /// Column (in characters), from 1.
    pub column: u32,
}

impl Pos {
    /// This position in a file, with the JSON path to the value when there is one.
    pub fn in_file(self, file: &Arc<str>, path: Option<String>) -> Location {
        Location { file: file.clone(), line: self.line, column: self.column, path }
    }
}

/// A JSON value with its position. Strings and numbers borrow the text they were read from,
/// and arrays, objects and strings with escapes live in the arena the caller gives
/// [`parse`]: a 10,000-rule nftables file is hundreds of thousands of values, and allocating
/// and freeing each was a third of reading it (the arena frees them in a few pieces).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Json<'a> {
    /// Where it starts.
    pub pos: Pos,
    /// What it is.
    pub v: Value<'a>,
}

/// The value itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number, as written.
    Number(&'a str),
    /// A string.
    String(&'a str),
    /// An array.
    Array(&'a [Json<'a>]),
    /// An object, keys in file order.
    Object(&'a [(&'a str, Json<'a>)]),
}

/// A syntax error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where.
    pub pos: Pos,
    /// What.
    pub message: String,
}

impl fmt::Display for SyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

const MAX_DEPTH: usize = 128;

impl<'a> Json<'a> {
    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        match &self.v {
            Value::Object(m) => m.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }
    /// The string, if it is one.
    pub fn as_str(&self) -> Option<&'a str> {
        match self.v {
            Value::String(s) => Some(s),
            _ => None,
        }
    }
    /// The elements, if an array.
    pub fn as_array(&self) -> Option<&'a [Json<'a>]> {
        match self.v {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }
    /// The members, if an object.
    pub fn as_object(&self) -> Option<&'a [(&'a str, Json<'a>)]> {
        match self.v {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }
    /// The number as an integer, if it is one.
    pub fn as_i64(&self) -> Option<i64> {
        match &self.v {
            Value::Number(n) => n.parse().ok(),
            _ => None,
        }
    }
    /// What kind of value it is, for error messages.
    pub fn kind(&self) -> &'static str {
        match self.v {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        }
    }
}

/// Parses a whole document; its arrays, objects and unescaped strings are put in `arena`.
pub fn parse<'a>(text: &'a str, arena: &'a bumpalo::Bump) -> Result<Json<'a>, SyntaxError> {
    let mut p = Parser {
        s: text.as_bytes(),
        i: 0,
        line: 1,
        col: 1,
        text,
        arena,
        elements: Vec::new(),
        members: Vec::new(),
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i < p.s.len() {
        return Err(p.err("unexpected text after the JSON document"));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    line: u32,
    col: u32,
    text: &'a str,
    arena: &'a bumpalo::Bump,
    /// The elements of the arrays being read, innermost last (each array's are moved into
    /// the arena when it closes).
    elements: Vec<Json<'a>>,
    /// The same for objects' members.
    members: Vec<(&'a str, Json<'a>)>,
}

impl<'a> Parser<'a> {
    fn pos(&self) -> Pos {
        Pos { line: self.line, column: self.col }
    }
    fn err(&self, m: &str) -> SyntaxError {
        let found = match self.text.get(self.i..).and_then(|r| r.chars().next()) {
            Some(c) => format!(" (found {c:?})"),
            None => " (found the end of the file: is it truncated?)".to_string(),
        };
        SyntaxError { pos: self.pos(), message: format!("{m}{found}") }
    }
    fn bump(&mut self) -> Option<u8> {
        let c = *self.s.get(self.i)?;
        self.i += 1;
        if c == b'\n' {
            self.line += 1;
            self.col = 1;
        } else if c & 0xc0 != 0x80 {
            self.col += 1;
        }
        Some(c)
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.bump();
        }
    }
    fn expect(&mut self, c: u8, what: &str) -> Result<(), SyntaxError> {
        if self.peek() == Some(c) {
            self.bump();
            Ok(())
        } else {
            Err(self.err(&format!("expected {what}")))
        }
    }
    fn value(&mut self, depth: usize) -> Result<Json<'a>, SyntaxError> {
        if depth > MAX_DEPTH {
            return Err(self.err("JSON nested too deeply"));
        }
        let pos = self.pos();
        let v = match self.peek() {
            Some(b'{') => {
                self.bump();
                let mark = self.members.len();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.bump();
                } else {
                    loop {
                        self.ws();
                        if self.peek() != Some(b'"') {
                            return Err(self.err("expected a string key"));
                        }
                        let k = self.string()?;
                        self.ws();
                        self.expect(b':', "':'")?;
                        self.ws();
                        let v = self.value(depth + 1)?;
                        self.members.push((k, v));
                        self.ws();
                        match self.peek() {
                            Some(b',') => {
                                self.bump();
                            }
                            Some(b'}') => {
                                self.bump();
                                break;
                            }
                            _ => return Err(self.err("expected ',' or '}'")),
                        }
                    }
                }
                let m = self.arena.alloc_slice_copy(&self.members[mark..]);
                self.members.truncate(mark);
                Value::Object(m)
            }
            Some(b'[') => {
                self.bump();
                let mark = self.elements.len();
                self.ws();
                if self.peek() == Some(b']') {
                    self.bump();
                } else {
                    loop {
                        self.ws();
                        let v = self.value(depth + 1)?;
                        self.elements.push(v);
                        self.ws();
                        match self.peek() {
                            Some(b',') => {
                                self.bump();
                            }
                            Some(b']') => {
                                self.bump();
                                break;
                            }
                            _ => return Err(self.err("expected ',' or ']'")),
                        }
                    }
                }
                let a = self.arena.alloc_slice_copy(&self.elements[mark..]);
                self.elements.truncate(mark);
                Value::Array(a)
            }
            Some(b'"') => Value::String(self.string()?),
            Some(b't') => self.word("true", Value::Bool(true))?,
            Some(b'f') => self.word("false", Value::Bool(false))?,
            Some(b'n') => self.word("null", Value::Null)?,
            Some(b'-' | b'0'..=b'9') => {
                let start = self.i;
                while matches!(self.peek(), Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')) {
                    self.bump();
                }
                let n = &self.text[start..self.i];
                if n.parse::<f64>().is_err() {
                    return Err(SyntaxError { pos, message: format!("bad number {n:?}") });
                }
                Value::Number(n)
            }
            _ => return Err(self.err("expected a JSON value")),
        };
        Ok(Json { pos, v })
    }
    fn word(&mut self, w: &str, v: Value<'a>) -> Result<Value<'a>, SyntaxError> {
        if self.s[self.i..].starts_with(w.as_bytes()) {
            for _ in 0..w.len() {
                self.bump();
            }
            Ok(v)
        } else {
            Err(self.err("expected a JSON value"))
        }
    }
    fn hex4(&mut self) -> Result<u32, SyntaxError> {
        let mut v = 0u32;
        for _ in 0..4 {
            let d = self
                .peek()
                .and_then(|c| (c as char).to_digit(16))
                .ok_or_else(|| self.err("bad \\u escape"))?;
            self.bump();
            v = v * 16 + d;
        }
        Ok(v)
    }
    fn string(&mut self) -> Result<&'a str, SyntaxError> {
        self.expect(b'"', "'\"'")?;
        // without escapes (nearly always), the text itself: no newline can be inside a string,
        // so the column moves by the characters skipped
        let start = self.i;
        let rest = &self.s[start..];
        let end = rest.iter().position(|&c| c == b'"' || c == b'\\' || c < 0x20).unwrap_or(rest.len());
        let run = &self.text[start..start + end];
        if rest.get(end) == Some(&b'"') {
            self.col += run.chars().count() as u32 + 1;
            self.i = start + end + 1;
            return Ok(run);
        }
        let mut out = String::new();
        loop {
            let start = self.i;
            while let Some(c) = self.peek() {
                if c == b'"' || c == b'\\' || c < 0x20 {
                    break;
                }
                self.bump();
            }
            out.push_str(&self.text[start..self.i]);
            match self.peek() {
                Some(b'"') => {
                    self.bump();
                    return Ok(self.arena.alloc_str(&out));
                }
                Some(b'\\') => {
                    self.bump();
                    let c = self.bump().ok_or_else(|| self.err("unterminated string"))?;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let mut cp = self.hex4()?;
                            if (0xd800..0xdc00).contains(&cp) {
                                if self.peek() == Some(b'\\') {
                                    self.bump();
                                    self.expect(b'u', "a low surrogate")?;
                                    let lo = self.hex4()?;
                                    if !(0xdc00..0xe000).contains(&lo) {
                                        return Err(self.err("bad surrogate pair"));
                                    }
                                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                                } else {
                                    return Err(self.err("lone surrogate in \\u escape"));
                                }
                            }
                            out.push(char::from_u32(cp).ok_or_else(|| self.err("bad \\u escape"))?);
                        }
                        _ => return Err(self.err("bad escape in string")),
                    }
                }
                Some(_) => return Err(self.err("control character in string")),
                None => return Err(self.err("unterminated string")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn positions_and_values() {
        let arena = bumpalo::Bump::new();
        let j = parse("{\"a\": [1, \"x\\u00e9\"],\n \"b\": {\"c\": null}}", &arena).unwrap();
        let a = j.get("a").unwrap();
        assert_eq!(a.pos, Pos { line: 1, column: 7 });
        assert_eq!(a.as_array().unwrap()[1].as_str(), Some("xé"));
        let c = j.get("b").unwrap().get("c").unwrap();
        assert_eq!(c.pos, Pos { line: 2, column: 13 });
        assert!(parse("{\"a\": ", &arena).unwrap_err().message.contains("truncated"));
        assert!(parse(&"[".repeat(1000), &arena).is_err());
    }
}
