//! pcap and pcapng files (read with `pcap-parser`) → packets → flows → events.

use std::io::Read;

use pcap_parser::pcapng::Block;
use pcap_parser::traits::PcapNGPacketBlock;
use pcap_parser::{PcapBlockOwned, PcapError};
use portolan_model::Event;

use crate::flows::Flows;
use crate::packet::{decode, linktype};
use crate::{Error, Stats};

/// The reader's buffer: the largest record it accepts (a record that claims more is an error
/// naming its offset, not an allocation).
const BUFFER: usize = 1 << 20;

struct Iface {
    linktype: u32,
    /// Units per second of this interface's timestamps.
    resolution: u64,
    /// Seconds added to every timestamp.
    offset: u64,
}

/// Reads a capture from `input`, sending each ended flow to `out`.
pub fn read(
    input: impl Read + Send,
    path: &str,
    source: u32,
    max_flows: usize,
    stats: &mut Stats,
    out: &mut impl FnMut(Event),
) -> Result<(), Error> {
    let mut reader = pcap_parser::create_reader(BUFFER, input).map_err(|e| match e {
        PcapError::Eof | PcapError::Incomplete(_) => Error::Capture {
            path: path.to_string(),
            offset: 0,
            what: "the file ends inside its header".into(),
        },
        _ => Error::Capture {
            path: path.to_string(),
            offset: 0,
            what: "not a pcap or pcapng capture (no known magic number)".into(),
        },
    })?;
    let mut flows = Flows::new(source, max_flows);
    // legacy pcap: one link type and resolution; pcapng: one per interface
    let mut legacy: Option<(u32, bool)> = None;
    let mut ifaces: Vec<Iface> = Vec::new();
    let mut n: u64 = 0;
    let result = loop {
        match reader.next() {
            Ok((len, block)) => {
                let mut frame: Option<(u32, i64, &[u8])> = None;
                match &block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy = Some((h.network.0 as u32, h.is_nanosecond_precision()));
                        let lt = h.network.0 as u32;
                        if !linktype::supported(lt) {
                            break Err(Error::Capture {
                                path: path.to_string(),
                                offset: 20,
                                what: format!(
                                    "link type {lt} is not one this reader decodes (Ethernet, Linux cooked, raw IP, loopback)"
                                ),
                            });
                        }
                    }
                    PcapBlockOwned::Legacy(b) => {
                        n += 1;
                        let (lt, nanos) = legacy.unwrap_or((linktype::ETHERNET, false));
                        let frac = if nanos { i64::from(b.ts_usec) / 1000 } else { i64::from(b.ts_usec) };
                        frame = Some((lt, i64::from(b.ts_sec) * 1_000_000 + frac, b.data));
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => ifaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        ifaces.push(Iface {
                            linktype: idb.linktype.0 as u32,
                            resolution: idb.ts_resolution().unwrap_or(1_000_000).max(1),
                            offset: idb.ts_offset() as u64,
                        });
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        n += 1;
                        match ifaces.get(epb.if_id as usize) {
                            Some(i) => {
                                let (s, frac) = epb.decode_ts(i.offset, i.resolution);
                                let us = u128::from(frac) * 1_000_000 / u128::from(i.resolution);
                                frame = Some((
                                    i.linktype,
                                    i64::from(s) * 1_000_000 + us as i64,
                                    epb.packet_data(),
                                ));
                            }
                            None => stats.skipped += 1,
                        }
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        n += 1;
                        // no timestamp: the last one seen
                        if let Some(i) = ifaces.first() {
                            frame = Some((i.linktype, flows.now_us(), spb.packet_data()));
                        }
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                if let Some((lt, ts, data)) = frame {
                    stats.records += 1;
                    match decode(lt, data) {
                        Some(p) => flows.packet(&p, ts, n, out),
                        None => stats.undecoded += 1,
                    }
                }
                reader.consume(len);
            }
            Err(PcapError::Eof) => break Ok(()),
            Err(PcapError::Incomplete(_)) => {
                // a pipe gives a record in pieces; a file that ends inside one says so
                // (UnexpectedEof) on the next call
                if reader.refill().is_err() {
                    break Err(Error::Capture {
                        path: path.to_string(),
                        offset: reader.consumed() as u64,
                        what: "reading failed".into(),
                    });
                }
            }
            Err(PcapError::UnexpectedEof) => break Err(truncated(path, reader.consumed())),
            Err(PcapError::BufferTooSmall) => {
                break Err(Error::Capture {
                    path: path.to_string(),
                    offset: reader.consumed() as u64,
                    what: format!(
                        "a record claims more than {} MiB; its length field is damaged",
                        BUFFER >> 20
                    ),
                });
            }
            Err(_) => {
                break Err(Error::Capture {
                    path: path.to_string(),
                    offset: reader.consumed() as u64,
                    what: "a damaged record (its header does not parse)".into(),
                });
            }
        }
    };
    flows.finish(out);
    stats.evicted += flows.evicted;
    result
}

fn truncated(path: &str, offset: usize) -> Error {
    Error::Capture {
        path: path.to_string(),
        offset: offset as u64,
        what: "the capture ends inside a record (truncated: was it copied while tcpdump wrote it?)".into(),
    }
}
