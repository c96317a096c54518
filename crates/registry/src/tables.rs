//! The tables build.rs generated, and safe accessors over them.

include!(concat!(env!("OUT_DIR"), "/meta.rs"));

static STRINGS: &str = include_str!(concat!(env!("OUT_DIR"), "/strings.txt"));
static STRING_TABLE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/string_table.bin"));
static RECORDS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/records.bin"));
static PORT_INDEX: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/port_index.bin"));
static NAME_INDEX: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/name_index.bin"));
static PRIMARY_TCP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/primary_tcp.bin"));
static PRIMARY_TCP_NAMES: &str = include_str!(concat!(env!("OUT_DIR"), "/primary_tcp.txt"));
static PRIMARY_UDP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/primary_udp.bin"));
static PRIMARY_UDP_NAMES: &str = include_str!(concat!(env!("OUT_DIR"), "/primary_udp.txt"));
pub(crate) static RANK_TCP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rank_tcp.bin"));
pub(crate) static RANK_UDP: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/rank_udp.bin"));

/// u32 fields per record (see build.rs).
pub(crate) const FIELDS: usize = 14;

#[inline]
pub(crate) fn u32_at(bytes: &[u8], i: usize) -> u32 {
    match bytes.get(i * 4..i * 4 + 4) {
        Some(b) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        None => 0,
    }
}

#[inline]
pub(crate) fn u16_at(bytes: &[u8], i: usize) -> u16 {
    match bytes.get(i * 2..i * 2 + 2) {
        Some(b) => u16::from_le_bytes([b[0], b[1]]),
        None => 0,
    }
}

/// Field `f` of record `n`.
#[inline]
pub(crate) fn field(n: usize, f: usize) -> u32 {
    u32_at(RECORDS, n * FIELDS + f)
}

/// The interned string with id `id`.
pub(crate) fn string(id: u32) -> &'static str {
    let off = u32_at(STRING_TABLE, id as usize * 2) as usize;
    let len = u32_at(STRING_TABLE, id as usize * 2 + 1) as usize;
    STRINGS.get(off..off + len).unwrap_or("")
}

/// Record numbers covering `port`.
pub(crate) fn port_rows(port: u16) -> impl Iterator<Item = usize> {
    let p = port as usize;
    let start = u32_at(PORT_INDEX, p) as usize;
    let end = u32_at(PORT_INDEX, p + 1) as usize;
    (start..end).map(|i| u32_at(PORT_INDEX, 65537 + i) as usize)
}

fn name_of(n: usize) -> &'static str {
    string(field(n, 0))
}

fn name_count() -> usize {
    NAME_INDEX.len() / 4
}

/// Record numbers whose name equals `name`, ignoring ASCII case.
pub(crate) fn name_rows(name: &str) -> impl Iterator<Item = usize> {
    let want = name.to_ascii_lowercase();
    let cmp = move |i: usize| {
        let n = name_of(u32_at(NAME_INDEX, i) as usize);
        n.bytes().map(|b| b.to_ascii_lowercase()).cmp(want.bytes())
    };
    // lower bound by binary search, then walk while equal
    let (mut lo, mut hi) = (0, name_count());
    while lo < hi {
        let mid = (lo + hi) / 2;
        if cmp(mid) == std::cmp::Ordering::Less {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    (lo..name_count())
        .take_while(move |&i| cmp(i) == std::cmp::Ordering::Equal)
        .map(|i| u32_at(NAME_INDEX, i) as usize)
}

/// Every service name, sorted by lowercase (with repeats).
pub(crate) fn names_sorted() -> impl Iterator<Item = &'static str> {
    (0..name_count()).map(|i| name_of(u32_at(NAME_INDEX, i) as usize))
}

/// Where each run of 256 ports starts in a primary table (by port, as the table is), and
/// where the last ends: a scan names every port of a host, and searching a run is a few steps
/// instead of a dozen across the whole table.
fn primary_runs(udp: bool) -> &'static [u32; 257] {
    static RUNS: [std::sync::OnceLock<[u32; 257]>; 2] =
        [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
    RUNS[usize::from(udp)].get_or_init(|| {
        let table = if udp { PRIMARY_UDP } else { PRIMARY_TCP };
        let n = table.len() / 8;
        let mut runs = [0u32; 257];
        let mut i = 0;
        for (run, start) in runs.iter_mut().enumerate() {
            while i < n && usize::from(u16_at(table, i * 4) >> 8) < run {
                i += 1;
            }
            *start = i as u32;
        }
        runs
    })
}

/// The service name of a TCP (`udp == false`) or UDP port from the compact table.
pub(crate) fn primary_name(port: u16, udp: bool) -> Option<&'static str> {
    let (table, names) =
        if udp { (PRIMARY_UDP, PRIMARY_UDP_NAMES) } else { (PRIMARY_TCP, PRIMARY_TCP_NAMES) };
    let n = table.len() / 8;
    let port_at = |i: usize| u16_at(table, i * 4);
    let run = usize::from(port >> 8);
    let runs = primary_runs(udp);
    let (mut lo, mut hi) = (runs[run] as usize, runs[run + 1] as usize);
    while lo < hi {
        let mid = (lo + hi) / 2;
        if port_at(mid) < port {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if lo < n && port_at(lo) == port {
        let len = u16_at(table, lo * 4 + 1) as usize;
        let off = u32_at(table, lo * 2 + 1) as usize;
        names.get(off..off + len)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use portolan_model::Transport;

    /// The compact table, searched run by run, names every TCP and UDP port as the first named
    /// row of the whole registry does.
    #[test]
    fn the_primary_table_agrees_with_the_registry_on_every_port() {
        let mut named = 0;
        for (t, udp) in [(Transport::Tcp, false), (Transport::Udp, true)] {
            for port in 0..=u16::MAX {
                let want = crate::by_port(port, Some(t))
                    .find(|e| e.transport() == Some(t) && !e.name().is_empty())
                    .map(|e| e.name());
                assert_eq!(super::primary_name(port, udp), want, "{port}/{t}");
                named += usize::from(want.is_some());
            }
        }
        assert!(named > 10_000, "{named}");
    }
}
