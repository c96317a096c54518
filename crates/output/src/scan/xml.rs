//! nmap XML (`-oX`), valid against nmap's `nmap.dtd` (xmloutputversion 1.05).
//!
//! The DTD fixes `scanner="nmap"`; Portolan names itself in `profile_name` and in the leading
//! comment, and writes its own version in `version`.

use std::io::{self, Write};

use portolan_model::{Host, HostnameKind, RunExit, ScanRun, ServiceMethod, Transport, Tunnel};

use super::{ScanSink, ShowOptions, hosts_summary, nmap_time, shown};
use crate::escape::xml as esc;

/// Writes nmap XML as hosts finish; `end` closes the document.
pub struct XmlSink<W: Write> {
    out: W,
    opts: ShowOptions,
    stylesheet: Option<String>,
}

impl<W: Write> XmlSink<W> {
    /// A writer with nmap's stylesheet reference when `/usr/share/nmap/nmap.xsl` exists.
    pub fn new(out: W, opts: ShowOptions) -> XmlSink<W> {
        let xsl = "/usr/share/nmap/nmap.xsl";
        let stylesheet = std::path::Path::new(xsl).exists().then(|| format!("file://{xsl}"));
        XmlSink { out, opts, stylesheet }
    }

    /// Sets or removes the `xml-stylesheet` reference.
    pub fn stylesheet(mut self, href: Option<String>) -> Self {
        self.stylesheet = href;
        self
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

fn proto(t: Transport) -> &'static str {
    // nmap's DTD knows ip, tcp, udp and sctp; DCCP never comes out of a scan.
    match t {
        Transport::Udp => "udp",
        Transport::Sctp => "sctp",
        _ => "tcp",
    }
}

impl<W: Write> ScanSink for XmlSink<W> {
    fn begin(&mut self, run: &ScanRun) -> io::Result<()> {
        let o = &mut self.out;
        writeln!(o, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
        writeln!(o, "<!DOCTYPE nmaprun>")?;
        if let Some(href) = &self.stylesheet {
            writeln!(o, "<?xml-stylesheet href=\"{}\" type=\"text/xsl\"?>", esc(href))?;
        }
        let startstr = nmap_time(run.start);
        // "--" is not allowed inside an XML comment: break it with a Unicode hyphen
        let args = esc(&run.args).replace("--", "-\u{2010}");
        writeln!(
            o,
            "<!-- {} {} scan initiated {} as: {} -->",
            esc(&super::scanner_title(run)),
            esc(&run.scanner_version),
            startstr,
            args
        )?;
        writeln!(
            o,
            "<nmaprun scanner=\"nmap\" args=\"{}\" start=\"{}\" startstr=\"{}\" version=\"{}\" xmloutputversion=\"1.05\" profile_name=\"{}\">",
            esc(&run.args),
            run.start.as_second(),
            startstr,
            esc(&run.scanner_version),
            esc(&run.scanner),
        )?;
        for si in &run.scan_info {
            writeln!(
                o,
                "<scaninfo type=\"{}\" protocol=\"{}\" numservices=\"{}\" services=\"{}\"/>",
                si.scan_type,
                proto(si.transport),
                si.num_services,
                esc(&si.services)
            )?;
        }
        writeln!(o, "<verbose level=\"{}\"/>", self.opts.verbose)?;
        writeln!(o, "<debugging level=\"0\"/>")?;
        o.flush()
    }

    fn host(&mut self, host: &Host) -> io::Result<()> {
        let o = &mut self.out;
        write!(o, "<host")?;
        if let Some(t) = host.start_time {
            write!(o, " starttime=\"{}\"", t.as_second())?;
        }
        if let Some(t) = host.end_time {
            write!(o, " endtime=\"{}\"", t.as_second())?;
        }
        write!(o, ">")?;
        writeln!(
            o,
            "<status state=\"{}\" reason=\"{}\" reason_ttl=\"{}\"/>",
            host.status.state,
            esc(host.status.reason.as_str()),
            host.status.reason_ttl
        )?;
        let addrtype = if host.address.is_ipv4() { "ipv4" } else { "ipv6" };
        writeln!(o, "<address addr=\"{}\" addrtype=\"{addrtype}\"/>", host.address)?;
        if let Some(mac) = &host.mac {
            match &host.mac_vendor {
                Some(v) => {
                    writeln!(o, "<address addr=\"{}\" addrtype=\"mac\" vendor=\"{}\"/>", esc(mac), esc(v))?
                }
                None => writeln!(o, "<address addr=\"{}\" addrtype=\"mac\"/>", esc(mac))?,
            }
        }
        writeln!(o, "<hostnames>")?;
        for h in &host.hostnames {
            let kind = match h.kind {
                HostnameKind::User => "user",
                HostnameKind::Ptr => "PTR",
            };
            writeln!(o, "<hostname name=\"{}\" type=\"{kind}\"/>", esc(&h.name))?;
        }
        writeln!(o, "</hostnames>")?;
        let s = shown(host, &self.opts);
        if !s.listed.is_empty() || !s.extra.is_empty() {
            write!(o, "<ports>")?;
            for e in &s.extra {
                writeln!(o, "<extraports state=\"{}\" count=\"{}\">", e.state, e.count)?;
                for r in &e.reasons {
                    write!(o, "<extrareasons reason=\"{}\" count=\"{}\"", esc(r.reason.as_str()), r.count)?;
                    if let Some(t) = r.transport {
                        write!(o, " proto=\"{}\"", proto(t))?;
                    }
                    if let Some(p) = &r.ports {
                        write!(o, " ports=\"{}\"", esc(p))?;
                    }
                    writeln!(o, "/>")?;
                }
                writeln!(o, "</extraports>")?;
            }
            for p in &s.listed {
                write!(o, "<port protocol=\"{}\" portid=\"{}\">", proto(p.transport), p.number)?;
                write!(
                    o,
                    "<state state=\"{}\" reason=\"{}\" reason_ttl=\"{}\"/>",
                    p.state,
                    esc(p.reason.as_str()),
                    p.reason_ttl
                )?;
                if let Some(svc) = &p.service {
                    write!(o, "<service name=\"{}\"", esc(&svc.name))?;
                    for (attr, v) in [
                        ("product", &svc.product),
                        ("version", &svc.version),
                        ("extrainfo", &svc.extra_info),
                        ("hostname", &svc.hostname),
                        ("ostype", &svc.os_type),
                        ("devicetype", &svc.device_type),
                    ] {
                        if let Some(v) = v {
                            write!(o, " {attr}=\"{}\"", esc(v))?;
                        }
                    }
                    if svc.tunnel == Some(Tunnel::Ssl) {
                        write!(o, " tunnel=\"ssl\"")?;
                    }
                    let method = match svc.method {
                        ServiceMethod::Table => "table",
                        ServiceMethod::Probed => "probed",
                    };
                    write!(o, " method=\"{method}\" conf=\"{}\"", svc.confidence.min(10))?;
                    if svc.cpe.is_empty() {
                        write!(o, "/>")?;
                    } else {
                        write!(o, ">")?;
                        for c in &svc.cpe {
                            write!(o, "<cpe>{}</cpe>", esc(c))?;
                        }
                        write!(o, "</service>")?;
                    }
                }
                writeln!(o, "</port>")?;
            }
            writeln!(o, "</ports>")?;
        }
        if let Some(srtt) = host.srtt_us {
            writeln!(
                o,
                "<times srtt=\"{srtt}\" rttvar=\"{}\" to=\"{}\"/>",
                srtt / 2,
                (srtt * 4).max(100_000)
            )?;
        }
        writeln!(o, "</host>")?;
        o.flush()
    }

    fn end(&mut self, run: &ScanRun) -> io::Result<()> {
        let o = &mut self.out;
        let finished = run.stats.finished.unwrap_or_else(jiff::Timestamp::now);
        let timestr = nmap_time(finished);
        let summary = format!(
            "Portolan done at {timestr}; {} scanned in {:.2} seconds",
            hosts_summary(run),
            run.stats.elapsed_secs
        );
        write!(
            o,
            "<runstats><finished time=\"{}\" timestr=\"{timestr}\" summary=\"{}\" elapsed=\"{:.2}\" exit=\"{}\"",
            finished.as_second(),
            esc(&summary),
            run.stats.elapsed_secs,
            if run.stats.exit == RunExit::Success { "success" } else { "error" },
        )?;
        if let Some(m) = &run.stats.error_message {
            write!(o, " errormsg=\"{}\"", esc(m))?;
        }
        writeln!(
            o,
            "/><hosts up=\"{}\" down=\"{}\" total=\"{}\"/>",
            run.stats.hosts_up, run.stats.hosts_down, run.stats.hosts_total
        )?;
        writeln!(o, "</runstats>")?;
        writeln!(o, "</nmaprun>")?;
        o.flush()
    }
}
