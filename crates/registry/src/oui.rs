//! Hardware vendors by MAC address prefix (IEEE OUIs), from nmap's `nmap-mac-prefixes` where
//! nmap is installed — read at run time, never shipped, for the same licence reason as
//! `nmap-services` (see `data/ranking/README.md`). Without it no vendor is named.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::OnceLock;

/// Where nmap keeps the file.
const PATHS: [&str; 2] = ["/usr/share/nmap/nmap-mac-prefixes", "/usr/local/share/nmap/nmap-mac-prefixes"];

/// The file's largest plausible size (it is about 800 KiB).
const MAX_FILE: u64 = 16 << 20;

fn table() -> &'static HashMap<u32, String> {
    static TABLE: OnceLock<HashMap<u32, String>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(dir) = std::env::var_os("NMAPDIR") {
            candidates.push(PathBuf::from(dir).join("nmap-mac-prefixes"));
        }
        candidates.extend(PATHS.iter().map(PathBuf::from));
        candidates
            .iter()
            .find_map(|p| portolan_model::input::read_text(p, MAX_FILE).ok())
            .map(|text| parse(&text))
            .unwrap_or_default()
    })
}

/// `AABBCC Vendor name` lines; comments and lines of another form are skipped.
fn parse(text: &str) -> HashMap<u32, String> {
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

/// The vendor of a MAC address, when nmap's prefix table is installed and names it.
pub fn mac_vendor(mac: [u8; 6]) -> Option<&'static str> {
    let prefix = u32::from_be_bytes([0, mac[0], mac[1], mac[2]]);
    table().get(&prefix).map(String::as_str)
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
        let t = parse("# comment\n000000 Xerox\n00000C Cisco Systems\nbad line\n0050C2 \n");
        assert_eq!(t.get(&0x00000c).map(String::as_str), Some("Cisco Systems"));
        assert_eq!(t.len(), 2);
        assert_eq!(mac_text([0, 0x0c, 0xab, 1, 2, 3]), "00:0C:AB:01:02:03");
    }
}
