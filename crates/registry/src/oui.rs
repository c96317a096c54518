//! Hardware vendors by MAC address prefix (IEEE OUIs), from nmap's `nmap-mac-prefixes` where
//! nmap is installed — read at run time, never shipped, for the same licence reason as
//! `nmap-services` (see `data/ranking/README.md`). Without it no vendor is named.

use std::path::PathBuf;
use std::sync::OnceLock;

/// Where nmap keeps the file.
const PATHS: [&str; 2] = ["/usr/share/nmap/nmap-mac-prefixes", "/usr/local/share/nmap/nmap-mac-prefixes"];

/// The file's largest plausible size (it is about 800 KiB).
const MAX_FILE: u64 = 16 << 20;

/// The vendors, when nmap's file is installed. The file is kept as read, with a sorted index of
/// (prefix, where its vendor's name is): a scan asks for a few vendors, and a map of 30,000
/// owned strings cost more than the rest of a one-host scan's own work.
struct Table {
    text: String,
    /// (prefix, start, end of the vendor in `text`), by prefix; a prefix listed twice keeps its
    /// lines in file order, and the last one names it.
    index: Vec<(u32, u32, u32)>,
}

impl Table {
    fn get(&self, prefix: u32) -> Option<&str> {
        let i = self.index.partition_point(|e| e.0 <= prefix);
        let &(p, start, end) = self.index.get(i.checked_sub(1)?)?;
        (p == prefix).then(|| self.text.get(start as usize..end as usize)).flatten()
    }
}

fn table() -> Option<&'static Table> {
    static TABLE: OnceLock<Option<Table>> = OnceLock::new();
    TABLE
        .get_or_init(|| {
            let mut candidates: Vec<PathBuf> = Vec::new();
            if let Some(dir) = std::env::var_os("NMAPDIR") {
                candidates.push(PathBuf::from(dir).join("nmap-mac-prefixes"));
            }
            candidates.extend(PATHS.iter().map(PathBuf::from));
            candidates.iter().find_map(|p| portolan_model::input::read_text(p, MAX_FILE).ok()).map(parse)
        })
        .as_ref()
}

/// `AABBCC Vendor name` lines; comments and lines of another form are skipped.
fn parse(text: String) -> Table {
    let mut index = Vec::with_capacity(text.len() / 24);
    for (start, end) in crate::lines::spans(text.as_bytes()) {
        if let Some(entry) = text.get(start..end).and_then(|line| entry(line, start)) {
            index.push(entry);
        }
    }
    // nmap's file is in order; a stable sort keeps a repeated prefix's lines in file order
    if !index.is_sorted_by_key(|e| e.0) {
        index.sort_by_key(|e| e.0);
    }
    Table { text, index }
}

/// One line's prefix and where its vendor is, the line starting at `at` in the file.
fn entry(line: &str, at: usize) -> Option<(u32, u32, u32)> {
    // nmap's own form, `AABBCC Vendor`, read in place: the general reading below gives the
    // same answer for such a line, and building the index this way takes two thirds the time
    let b = line.as_bytes();
    if b.len() > 7 && b[6] == b' ' && b[7].is_ascii_graphic() && b[..6].iter().all(u8::is_ascii_hexdigit) {
        let p = b[..6].iter().fold(0u32, |p, &c| p << 4 | (c as char).to_digit(16).unwrap_or(0));
        let vendor = line[7..].trim_end();
        return Some((p, u32::try_from(at + 7).ok()?, u32::try_from(at + 7 + vendor.len()).ok()?));
    }
    let lead = line.len() - line.trim_start().len();
    let (prefix, rest) = line.trim().split_once(' ')?;
    if prefix.len() != 6 {
        return None;
    }
    let p = u32::from_str_radix(prefix, 16).ok()?;
    let vendor = rest.trim();
    if vendor.is_empty() {
        return None;
    }
    let start = at + lead + prefix.len() + 1 + (rest.len() - rest.trim_start().len());
    Some((p, u32::try_from(start).ok()?, u32::try_from(start + vendor.len()).ok()?))
}

/// The vendor of a MAC address, when nmap's prefix table is installed and names it.
pub fn mac_vendor(mac: [u8; 6]) -> Option<&'static str> {
    let prefix = u32::from_be_bytes([0, mac[0], mac[1], mac[2]]);
    table()?.get(prefix)
}

/// A MAC address as nmap writes it: `AA:BB:CC:DD:EE:FF`.
pub fn mac_text(mac: [u8; 6]) -> String {
    mac.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_text() {
        let t = parse("# comment\n000000 Xerox\n00000C Cisco Systems\nbad line\n0050C2 \n".to_string());
        assert_eq!(t.get(0x00000c), Some("Cisco Systems"));
        assert_eq!(t.index.len(), 2);
        assert_eq!(mac_text([0, 0x0c, 0xab, 1, 2, 3]), "00:0C:AB:01:02:03");
    }

    /// The reading before the index: a map of every line, the last line of a prefix winning.
    fn by_map(text: &str) -> std::collections::HashMap<u32, String> {
        text.lines()
            .filter_map(|l| {
                let (prefix, vendor) = l.trim().split_once(' ')?;
                if prefix.len() != 6 {
                    return None;
                }
                let p = u32::from_str_radix(prefix, 16).ok()?;
                let vendor = vendor.trim();
                (!vendor.is_empty()).then(|| (p, vendor.to_string()))
            })
            .collect()
    }

    #[test]
    fn the_index_names_what_the_map_named() {
        // files out of order, with repeated prefixes, blanks, CRLF, tabs, signs and junk
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let mut text = String::new();
            for _ in 0..next(60) {
                let prefix = match next(8) {
                    0 => format!("{:05X}", next(16)),
                    1 => format!("+{:05X}", next(16)),
                    2 => "zzzzzz".to_string(),
                    _ => format!("{:06X}", next(24)),
                };
                let pad = ["", " ", "  ", "\t"][next(4) as usize];
                let vendor =
                    ["", "Acme", " Acme Corp ", "Büro GmbH", "x\ty", "\u{a0}Nbsp\u{a0}"][next(6) as usize];
                let end = ["\n", "\r\n", " \n"][next(3) as usize];
                text.push_str(&format!("{pad}{prefix} {vendor}{end}"));
            }
            if next(2) == 0 {
                text.pop();
            }
            let (map, table) = (by_map(&text), parse(text.clone()));
            for p in 0..24 {
                assert_eq!(table.get(p), map.get(&p).map(String::as_str), "prefix {p:06X} of {text:?}");
            }
        }
    }
}
