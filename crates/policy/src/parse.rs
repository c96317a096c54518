//! Reading a policy: TOML with spans (toml's `DeTable`), walked by hand so that every problem
//! names its file, line, column and field, and every problem in a file is reported at once.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::civil::Date;
use portolan_model::Transport;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::{
    AllowedScope, DatedAt, Defaults, Entry, Group, HostSel, Location, Policy, PolicyError, Problem, Unlisted,
};

/// A policy file is small; anything larger is a mistake (or an attack on memory).
const MAX_FILE: u64 = 16 << 20;
/// Includes nest at most this deep.
const MAX_DEPTH: usize = 16;

/// One file's text and line table.
struct Src {
    path: std::path::PathBuf,
    /// The file as locations name it.
    file: Arc<str>,
    text: String,
    line_starts: Vec<usize>,
}

impl Src {
    fn new(file: &Path, text: String) -> Src {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Src { path: file.to_path_buf(), file: Arc::from(file.display().to_string()), text, line_starts }
    }

    fn loc(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset).max(1);
        let start = self.line_starts[line - 1];
        let col = self.text.get(start..offset).map_or(offset - start, |s| s.chars().count()) + 1;
        Location::new(Arc::clone(&self.file), line as u32, col as u32)
    }
}

/// A host string waiting for the groups of every file to be known.
struct RawHost {
    text: String,
    at: Location,
    field: String,
}

struct RawEntry {
    entry: Entry,
    hosts: Vec<RawHost>,
    sources: Vec<RawHost>,
}

struct RawGroup {
    name: String,
    at: Location,
    hosts: Vec<RawHost>,
}

#[derive(Default)]
struct Loader {
    /// The main policy's directory (canonical): includes stay inside it unless `anywhere`.
    root: Option<PathBuf>,
    anywhere: bool,
    problems: Vec<Problem>,
    files: Vec<PathBuf>,
    seen: HashSet<PathBuf>,
    defaults: Option<Defaults>,
    groups: Vec<RawGroup>,
    entries: Vec<RawEntry>,
    warnings: Vec<Problem>,
}

pub fn load(path: &Path, opts: &crate::LoadOptions) -> Result<Policy, PolicyError> {
    let root = std::fs::canonicalize(path).ok().and_then(|p| p.parent().map(Path::to_path_buf));
    let mut l = Loader { root, anywhere: opts.includes_anywhere, ..Loader::default() };
    l.file(path, None, 0);
    l.finish()
}

pub fn load_text(name: &Path, text: &str) -> Result<Policy, PolicyError> {
    let mut l = Loader::default();
    l.seen.insert(name.to_path_buf());
    l.files.push(name.to_path_buf());
    l.text(Src::new(name, text.to_string()), 0);
    l.finish()
}

fn file_problem(file: &Path, message: String) -> Problem {
    Problem { at: Location::new(file.display().to_string(), 1, 1), field: String::new(), message }
}

impl Loader {
    fn file(&mut self, path: &Path, from: Option<(&Location, &str)>, depth: usize) {
        let here = |l: &mut Loader, message: String| {
            let p = match from {
                Some((at, field)) => Problem { at: at.clone(), field: field.to_string(), message },
                None => file_problem(path, message),
            };
            l.problems.push(p);
        };
        let key = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        if from.is_some()
            && !self.anywhere
            && let Some(root) = &self.root
            && !key.starts_with(root)
        {
            let message = format!(
                "{} is outside the policy's directory {}; includes stay inside it unless allowed",
                path.display(),
                root.display()
            );
            here(self, message);
            return;
        }
        if !self.seen.insert(key) {
            if from.is_some() {
                here(self, format!("{} is included twice (or includes itself)", path.display()));
            }
            return;
        }
        if depth > MAX_DEPTH {
            here(self, format!("includes nest deeper than {MAX_DEPTH} files"));
            return;
        }
        let text = match portolan_model::input::read_bounded(path, MAX_FILE) {
            Ok(b) => match String::from_utf8(b) {
                Ok(t) => t,
                Err(e) => {
                    let src = Src::new(path, String::from_utf8_lossy(e.as_bytes()).into_owned());
                    self.problems.push(Problem {
                        at: src.loc(e.utf8_error().valid_up_to()),
                        field: String::new(),
                        message: "not valid UTF-8 (a policy is UTF-8 TOML text)".into(),
                    });
                    return;
                }
            },
            Err(portolan_model::input::InputError::TooLarge { .. }) => {
                here(
                    self,
                    format!("{} is larger than {} MiB; is it a policy?", path.display(), MAX_FILE >> 20),
                );
                return;
            }
            Err(e) => {
                here(self, e.to_string());
                return;
            }
        };
        self.files.push(path.to_path_buf());
        self.text(Src::new(path, text), depth);
    }

    fn text(&mut self, src: Src, depth: usize) {
        let doc = match DeTable::parse(&src.text) {
            Ok(d) => d,
            Err(e) => {
                let offset = e.span().map_or(0, |s| s.start);
                let at = src.loc(offset);
                let msg = e.message().trim().replace('\n', "; ");
                let field = field_at(&src.text, offset);
                self.problems.push(Problem { at, field, message: format!("invalid TOML: {msg}") });
                return;
            }
        };
        let main = depth == 0;
        let mut includes = Vec::new();
        let mut f = FileCtx { src: &src, problems: Vec::new(), warnings: Vec::new() };
        for (k, v) in doc.get_ref().iter() {
            let key = k.get_ref().as_ref();
            match key {
                "version" => {
                    if let Some(n) = f.int(v, "version")
                        && n != crate::POLICY_VERSION
                    {
                        f.bad(
                            v.span(),
                            "version",
                            format!("version {n} is not one this Portolan reads; expected 1"),
                        );
                    }
                }
                "include" => {
                    for (s, at, field) in f.strings(v, "include") {
                        includes.push((s, at, field));
                    }
                }
                "defaults" => {
                    if !main {
                        f.bad(
                            k.span(),
                            "defaults",
                            "[defaults] belongs in the main policy file, not an included one",
                        );
                    } else if let Some(d) = f.defaults(v) {
                        self.defaults = Some(d);
                    }
                }
                "groups" => {
                    if let Some(t) = f.table(v, "groups") {
                        for (gk, gv) in t.iter() {
                            if let Some(g) = f.group(gk, gv) {
                                self.groups.push(g);
                            }
                        }
                    }
                }
                "allow" => match v.get_ref() {
                    DeValue::Array(a) => {
                        for (i, item) in a.iter().enumerate() {
                            let name = format!("allow[{}]", i + 1);
                            if let Some(e) = f.entry(item, &name) {
                                self.entries.push(e);
                            }
                        }
                    }
                    _ => f.bad(
                        v.span(),
                        "allow",
                        format!("expected [[allow]] tables, found {}", kind(v.get_ref())),
                    ),
                },
                other => f.bad(
                    k.span(),
                    other,
                    "unknown field; expected one of: version, include, defaults, groups, allow".to_string(),
                ),
            }
        }
        let FileCtx { problems, warnings, .. } = f;
        self.problems.extend(problems);
        self.warnings.extend(warnings);
        let dir = src.path.parent().map(Path::to_path_buf).unwrap_or_default();
        for (inc, at, field) in includes {
            let pattern = dir.join(&inc);
            match expand_glob(&pattern) {
                Ok(paths) if paths.is_empty() => self.problems.push(Problem {
                    at,
                    field,
                    message: format!("{} matches no file", pattern.display()),
                }),
                Ok(paths) => {
                    for p in paths {
                        self.file(&p, Some((&at, &field)), depth + 1);
                    }
                }
                Err(e) => self.problems.push(Problem { at, field, message: e.to_string() }),
            }
        }
    }

    fn finish(mut self) -> Result<Policy, PolicyError> {
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        let raw_groups = std::mem::take(&mut self.groups);
        for g in &raw_groups {
            if let Some(prev) = groups.get(&g.name) {
                self.problems.push(Problem {
                    at: g.at.clone(),
                    field: format!("groups.{}", g.name),
                    message: format!("group {} is already defined at {}", g.name, prev.at),
                });
                continue;
            }
            let mut hosts = Vec::new();
            for h in &g.hosts {
                match resolve(&h.text, None) {
                    Ok(mut v) => hosts.append(&mut v),
                    Err(m) => self.problems.push(Problem {
                        at: h.at.clone(),
                        field: h.field.clone(),
                        message: m.to_string(),
                    }),
                }
            }
            groups.insert(g.name.clone(), Group { name: g.name.clone(), hosts, at: g.at.clone() });
        }
        let mut entries = Vec::new();
        for mut raw in std::mem::take(&mut self.entries) {
            for h in &raw.hosts {
                match resolve(&h.text, Some(&groups)) {
                    Ok(mut v) => raw.entry.hosts.append(&mut v),
                    Err(m) => self.problems.push(Problem {
                        at: h.at.clone(),
                        field: h.field.clone(),
                        message: m.to_string(),
                    }),
                }
            }
            if raw.hosts.is_empty() {
                raw.entry.hosts.push(HostSel::Any);
            }
            for h in &raw.sources {
                match resolve(&h.text, Some(&groups)) {
                    Ok(mut v) => raw.entry.sources.append(&mut v),
                    Err(m) => self.problems.push(Problem {
                        at: h.at.clone(),
                        field: h.field.clone(),
                        message: m.to_string(),
                    }),
                }
            }
            entries.push(raw.entry);
        }
        if !self.problems.is_empty() {
            self.problems.sort_by(|a, b| {
                let file = |l: &Location| self.files.iter().position(|f| f.display().to_string() == *l.file);
                (file(&a.at), a.at.line, a.at.column).cmp(&(file(&b.at), b.at.line, b.at.column))
            });
            return Err(PolicyError { problems: self.problems });
        }
        Ok(Policy {
            files: self.files,
            defaults: self.defaults.unwrap_or_default(),
            groups,
            entries,
            warnings: self.warnings,
        })
    }
}

/// The field a byte offset falls in, from the table headers and the key of its line (for TOML
/// syntax errors, which the parser reports without a path): `allow[2].expires`.
fn field_at(text: &str, offset: usize) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut table = String::new();
    let mut key = String::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("[[").and_then(|r| r.split_once("]]")).map(|(n, _)| n.trim()) {
            let n = counts.entry(name.to_string()).or_default();
            *n += 1;
            table = format!("{name}[{n}]");
            key.clear();
        } else if let Some(name) = t.strip_prefix('[').and_then(|r| r.split_once(']')).map(|(n, _)| n.trim())
        {
            table = name.to_string();
            key.clear();
        } else if let Some((k, _)) = t.split_once('=') {
            let k = k.trim();
            if !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || "_-.\"".contains(c)) {
                key = k.trim_matches('"').to_string();
            }
        }
        if start + line.len() > offset {
            break;
        }
        start += line.len();
    }
    match (table.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

/// A host string: `*`, `localhost`, an address, a CIDR, a group (a bare word), a host name with
/// a dot, or `host:NAME` for a single-label name.
fn resolve(text: &str, groups: Option<&BTreeMap<String, Group>>) -> Result<Vec<HostSel>, HostError> {
    let t = text.trim();
    if t == "*" || t.eq_ignore_ascii_case("any") {
        return Ok(vec![HostSel::Any]);
    }
    if t.eq_ignore_ascii_case("localhost") {
        return Ok(vec![HostSel::Localhost]);
    }
    if let Some((a, p)) = t.split_once('/') {
        let addr: IpAddr =
            a.parse().map_err(|_| HostError::CidrAddress { text: t.to_string(), addr: a.to_string() })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix: u8 = p.parse().ok().filter(|&n: &u8| n <= max).ok_or_else(|| HostError::CidrPrefix {
            text: t.to_string(),
            prefix: p.to_string(),
            max,
        })?;
        return Ok(vec![HostSel::Net { addr, prefix }]);
    }
    if let Ok(addr) = t.parse::<IpAddr>() {
        return Ok(vec![HostSel::Net { addr, prefix: if addr.is_ipv4() { 32 } else { 128 } }]);
    }
    if let Some(name) = t.strip_prefix("host:") {
        return valid_name(name).map(|n| vec![HostSel::Name(n)]);
    }
    if !t.contains('.') {
        if t.chars().all(|c| c.is_ascii_digit()) {
            return Err(HostError::Number(t.to_string()));
        }
        return match groups {
            Some(g) => match g.get(t) {
                Some(group) => Ok(group.hosts.clone()),
                None => Err(HostError::NoGroup { name: t.to_string(), defined: g.keys().cloned().collect() }),
            },
            None => Err(HostError::GroupInGroup(t.to_string())),
        };
    }
    if t.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(HostError::Address(t.to_string()));
    }
    valid_name(t).map(|n| vec![HostSel::Name(n)])
}

fn valid_name(name: &str) -> Result<String, HostError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        });
    if ok { Ok(name.to_ascii_lowercase()) } else { Err(HostError::Name(name.to_string())) }
}

/// Why a host string names no hosts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum HostError {
    #[error(
        "{text:?} is not a valid CIDR: {addr:?} is not an IP address; expected e.g. 198.18.0.0/24 or 2001:db8::/64"
    )]
    CidrAddress { text: String, addr: String },
    #[error("{text:?} is not a valid CIDR: prefix length {prefix:?} must be 0-{max}")]
    CidrPrefix { text: String, prefix: String, max: u8 },
    #[error("{0:?} is not an address; expected an address, CIDR, group or host name")]
    Number(String),
    #[error("no group named {name:?} ({}); define [groups.{name}], or write host:{name} for a host name", defined_groups(.defined))]
    NoGroup { name: String, defined: Vec<String> },
    #[error(
        "{0:?} is not an address, CIDR or host name (groups cannot contain groups; write host:{0} for a single-label host name)"
    )]
    GroupInGroup(String),
    #[error("{0:?} is not a valid IP address")]
    Address(String),
    #[error("{0:?} is not a valid host name")]
    Name(String),
}

fn defined_groups(names: &[String]) -> String {
    if names.is_empty() {
        "no groups are defined".to_string()
    } else {
        format!("groups: {}", names.join(", "))
    }
}

/// Why an include names no files.
#[derive(Debug, thiserror::Error)]
enum IncludeError {
    #[error("a * may appear only in the file name of an include")]
    StarInDirectory,
    #[error("an include may contain one * at most")]
    TwoStars,
    #[error("cannot read directory {}: {source}", .dir.display())]
    ReadDir { dir: PathBuf, source: std::io::Error },
}

/// Why a port string is not a port or range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum PortError {
    #[error("port {0} is out of range; expected 0-65535")]
    OutOfRange(u64),
    #[error("{0:?} is not a port number; expected e.g. 22, \"80,443\" or \"8000-8010\"")]
    NotNumber(String),
    #[error("range {0:?} runs backwards; expected low-high")]
    Backwards(String),
}

/// `dir/name` or `dir/*.toml` (a `*` in the last component only), sorted.
fn expand_glob(pattern: &Path) -> Result<Vec<PathBuf>, IncludeError> {
    let name = pattern.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if !name.contains('*') {
        return Ok(if pattern.exists() { vec![pattern.to_path_buf()] } else { Vec::new() });
    }
    let dir = pattern.parent().unwrap_or(Path::new("."));
    if dir.to_str().is_some_and(|d| d.contains('*')) {
        return Err(IncludeError::StarInDirectory);
    }
    let (pre, post) = name.split_once('*').unwrap_or((name, ""));
    if post.contains('*') {
        return Err(IncludeError::TwoStars);
    }
    let rd =
        std::fs::read_dir(dir).map_err(|source| IncludeError::ReadDir { dir: dir.to_path_buf(), source })?;
    let mut out: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.len() >= pre.len() + post.len() && n.starts_with(pre) && n.ends_with(post))
        })
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    out.sort();
    Ok(out)
}

fn kind(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

type Val<'i> = Spanned<DeValue<'i>>;

/// Problems of one file, with helpers that read typed values or say what was expected.
struct FileCtx<'s> {
    src: &'s Src,
    problems: Vec<Problem>,
    warnings: Vec<Problem>,
}

const ENTRY_FIELDS: &str = "id, hosts, ports (or port), transport, service, process, owner, purpose, sources, scope, review_by, expires, ticket, required";

impl FileCtx<'_> {
    fn bad(&mut self, span: Range<usize>, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            at: self.src.loc(span.start),
            field: field.into(),
            message: message.into(),
        });
    }

    fn table<'a, 'i>(&mut self, v: &'a Val<'i>, field: &str) -> Option<&'a DeTable<'i>> {
        match v.get_ref() {
            DeValue::Table(t) => Some(t),
            other => {
                self.bad(v.span(), field, format!("expected a table, found {}", kind(other)));
                None
            }
        }
    }

    fn string(&mut self, v: &Val<'_>, field: &str) -> Option<String> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.to_string()),
            other => {
                self.bad(v.span(), field, format!("expected a string, found {}", kind(other)));
                None
            }
        }
    }

    fn int(&mut self, v: &Val<'_>, field: &str) -> Option<i64> {
        match v.get_ref() {
            DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.bad(v.span(), field, "integer out of range");
                    None
                }
            },
            other => {
                self.bad(v.span(), field, format!("expected an integer, found {}", kind(other)));
                None
            }
        }
    }

    fn boolean(&mut self, v: &Val<'_>, field: &str) -> Option<bool> {
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.bad(v.span(), field, format!("expected true or false, found {}", kind(other)));
                None
            }
        }
    }

    /// A string or an array of strings, each with its place.
    fn strings(&mut self, v: &Val<'_>, field: &str) -> Vec<(String, Location, String)> {
        match v.get_ref() {
            DeValue::String(s) => vec![(s.to_string(), self.src.loc(v.span().start), field.to_string())],
            DeValue::Array(a) => {
                let mut out = Vec::new();
                for (i, item) in a.iter().enumerate() {
                    let f = format!("{field}[{}]", i + 1);
                    if let Some(s) = self.string(item, &f) {
                        out.push((s, self.src.loc(item.span().start), f));
                    }
                }
                out
            }
            other => {
                self.bad(
                    v.span(),
                    field,
                    format!("expected a string or an array of strings, found {}", kind(other)),
                );
                Vec::new()
            }
        }
    }

    fn raw_hosts(&mut self, v: &Val<'_>, field: &str) -> Vec<RawHost> {
        self.strings(v, field).into_iter().map(|(text, at, field)| RawHost { text, at, field }).collect()
    }

    fn date(&mut self, v: &Val<'_>, field: &str) -> Option<DatedAt> {
        let expected = "expected a date such as 2027-06-30";
        let date = match v.get_ref() {
            DeValue::Datetime(dt) => match (dt.date, dt.time) {
                (Some(d), None) => Date::new(d.year as i16, d.month as i8, d.day as i8).ok(),
                _ => {
                    self.bad(v.span(), field, format!("{dt} has a time; {expected}"));
                    return None;
                }
            },
            DeValue::String(s) => match s.parse::<Date>() {
                Ok(d) => Some(d),
                Err(_) => {
                    self.bad(v.span(), field, format!("{s:?} is not a date; {expected}"));
                    return None;
                }
            },
            other => {
                self.bad(v.span(), field, format!("{expected}, found {}", kind(other)));
                return None;
            }
        };
        match date {
            Some(date) => Some(DatedAt { date, at: self.src.loc(v.span().start), field: field.to_string() }),
            None => {
                self.bad(v.span(), field, format!("not a calendar date; {expected}"));
                None
            }
        }
    }

    fn defaults(&mut self, v: &Val<'_>) -> Option<Defaults> {
        let t = self.table(v, "defaults")?;
        let mut d = Defaults::default();
        for (k, v) in t.iter() {
            let field = format!("defaults.{}", k.get_ref());
            match k.get_ref().as_ref() {
                "unlisted" => match self.string(v, &field).as_deref() {
                    Some("deny") => d.unlisted = Unlisted::Deny,
                    Some("allow") => d.unlisted = Unlisted::Allow,
                    Some(other) => self.bad(
                        v.span(),
                        field,
                        format!("{other:?} is not a choice; expected \"deny\" or \"allow\""),
                    ),
                    None => {}
                },
                "cleartext" => {
                    if let Some(b) = self.boolean(v, &field) {
                        d.cleartext = b;
                    }
                }
                _ => self.bad(k.span(), field, "unknown field; expected one of: unlisted, cleartext"),
            }
        }
        Some(d)
    }

    fn group(&mut self, k: &Spanned<std::borrow::Cow<'_, str>>, v: &Val<'_>) -> Option<RawGroup> {
        let name = k.get_ref().to_string();
        let field = format!("groups.{name}");
        if name.is_empty()
            || name.contains('.')
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || name.eq_ignore_ascii_case("localhost")
            || name.eq_ignore_ascii_case("any")
        {
            self.bad(
                k.span(),
                field,
                "a group name is letters, digits, - and _ (no dots, not localhost or any)".to_string(),
            );
            return None;
        }
        let t = self.table(v, &field)?;
        let mut hosts = None;
        for (hk, hv) in t.iter() {
            let f = format!("{field}.{}", hk.get_ref());
            match hk.get_ref().as_ref() {
                "hosts" => hosts = Some(self.raw_hosts(hv, &f)),
                "description" => {
                    self.string(hv, &f);
                }
                _ => self.bad(hk.span(), f, "unknown field; expected one of: hosts, description"),
            }
        }
        let Some(hosts) = hosts else {
            self.bad(v.span(), field, "missing field hosts (the group's addresses, networks and names)");
            return None;
        };
        Some(RawGroup { name, at: self.src.loc(k.span().start), hosts })
    }

    fn entry(&mut self, v: &Val<'_>, name: &str) -> Option<RawEntry> {
        let t = self.table(v, name)?;
        let before = self.problems.len();
        let mut e = Entry {
            id: None,
            name: name.to_string(),
            at: self.src.loc(v.span().start),
            hosts: Vec::new(),
            hosts_text: Vec::new(),
            ports: Vec::new(),
            ports_text: String::new(),
            transport: Transport::Tcp,
            service: None,
            process: None,
            owner: None,
            purpose: None,
            sources: Vec::new(),
            scope: AllowedScope::All,
            review_by: None,
            expires: None,
            ticket: None,
            required: false,
        };
        let mut hosts = Vec::new();
        let mut sources = Vec::new();
        let mut have_ports = false;
        for (k, v) in t.iter() {
            let key = k.get_ref().as_ref();
            let field = format!("{name}.{key}");
            match key {
                "id" => e.id = self.string(v, &field),
                "hosts" => {
                    hosts = self.raw_hosts(v, &field);
                    e.hosts_text = hosts.iter().map(|h| h.text.clone()).collect();
                }
                "port" | "ports" => {
                    if have_ports {
                        self.bad(k.span(), field, "give either port or ports, not both");
                        continue;
                    }
                    have_ports = true;
                    if let Some(ranges) = self.ports(v, &field) {
                        e.ports_text = ports_text(&ranges);
                        e.ports = ranges;
                    }
                }
                "transport" => {
                    if let Some(s) = self.string(v, &field) {
                        match s.parse::<Transport>() {
                            Ok(t) => e.transport = t,
                            Err(_) => self.bad(
                                v.span(),
                                field,
                                format!("{s:?} is not a transport; expected tcp, udp or sctp"),
                            ),
                        }
                    }
                }
                "service" => e.service = self.string(v, &field).map(|s| s.to_ascii_lowercase()),
                "process" => e.process = self.string(v, &field),
                "owner" | "purpose" => {
                    let value = self.string(v, &field);
                    if value
                        .as_deref()
                        .is_some_and(|s| s.trim().is_empty() || s.trim().eq_ignore_ascii_case("todo"))
                    {
                        self.warnings.push(Problem {
                            at: self.src.loc(v.span().start),
                            field: field.clone(),
                            message: format!("{key} is not filled in yet (TODO)"),
                        });
                    }
                    if key == "owner" {
                        e.owner = value;
                    } else {
                        e.purpose = value;
                    }
                }
                "ticket" => e.ticket = self.string(v, &field),
                "sources" => sources = self.raw_hosts(v, &field),
                "scope" => match self.string(v, &field).as_deref() {
                    Some("loopback") => e.scope = AllowedScope::Loopback,
                    Some("address") => e.scope = AllowedScope::Address,
                    Some("all") => e.scope = AllowedScope::All,
                    Some(other) => self.bad(
                        v.span(),
                        field,
                        format!("{other:?} is not a scope; expected \"loopback\", \"address\" or \"all\""),
                    ),
                    None => {}
                },
                "review_by" => e.review_by = self.date(v, &field),
                "expires" => e.expires = self.date(v, &field),
                "required" => {
                    if let Some(b) = self.boolean(v, &field) {
                        e.required = b;
                    }
                }
                _ => self.bad(k.span(), field, format!("unknown field; expected one of: {ENTRY_FIELDS}")),
            }
        }
        if !have_ports {
            self.bad(
                v.span(),
                format!("{name}.ports"),
                "missing field ports (e.g. ports = 22, \"80,443\" or \"8000-8010\")",
            );
        }
        if self.problems.len() > before {
            return None;
        }
        Some(RawEntry { entry: e, hosts, sources })
    }

    /// `22`, `"22"`, `"80,443,8000-8010"` or an array of those.
    fn ports(&mut self, v: &Val<'_>, field: &str) -> Option<Vec<(u16, u16)>> {
        let mut out = Vec::new();
        let before = self.problems.len();
        let items: Vec<&Val<'_>> = match v.get_ref() {
            DeValue::Array(a) if a.is_empty() => {
                self.bad(v.span(), field, "empty list; expected at least one port");
                return None;
            }
            DeValue::Array(a) => a.iter().collect(),
            _ => vec![v],
        };
        for item in items {
            match item.get_ref() {
                DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
                    Ok(n) if (0..=65535).contains(&n) => out.push((n as u16, n as u16)),
                    _ => self.bad(
                        item.span(),
                        field,
                        format!("port {} is out of range; expected 0-65535", i.as_str()),
                    ),
                },
                DeValue::String(s) => {
                    for part in s.split(',').map(str::trim) {
                        match parse_range(part) {
                            Ok(r) => out.push(r),
                            Err(m) => self.bad(item.span(), field, m.to_string()),
                        }
                    }
                }
                other => self.bad(
                    item.span(),
                    field,
                    format!(
                        "expected a port, a \"lo-hi\" range or a comma-separated list, found {}",
                        kind(other)
                    ),
                ),
            }
        }
        if self.problems.len() > before {
            return None;
        }
        out.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::new();
        for (lo, hi) in out {
            match merged.last_mut() {
                Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        Some(merged)
    }
}

fn parse_range(s: &str) -> Result<(u16, u16), PortError> {
    let num = |t: &str| -> Result<u16, PortError> {
        let t = t.trim();
        match t.parse::<u64>() {
            Ok(n) if n <= 65535 => Ok(n as u16),
            Ok(n) => Err(PortError::OutOfRange(n)),
            Err(_) => Err(PortError::NotNumber(t.to_string())),
        }
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (lo, hi) = (num(a)?, num(b)?);
            if lo > hi {
                return Err(PortError::Backwards(s.to_string()));
            }
            Ok((lo, hi))
        }
        None => {
            let n = num(s)?;
            Ok((n, n))
        }
    }
}

/// `22,80,8000-8010`.
pub fn ports_text(ranges: &[(u16, u16)]) -> String {
    ranges
        .iter()
        .map(|&(lo, hi)| if lo == hi { lo.to_string() } else { format!("{lo}-{hi}") })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        match Policy::parse_str("p.toml", text) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn locations_and_fields() {
        assert_eq!(
            err("[[allow]]\nports = 70000\n"),
            "p.toml:2:9: allow[1].ports: port 70000 is out of range; expected 0-65535"
        );
        assert_eq!(
            err("[[allow]]\nports = 22\ncolour = 1\n"),
            format!("p.toml:3:1: allow[1].colour: unknown field; expected one of: {ENTRY_FIELDS}")
        );
        let e = err("[groups.web]\nhosts = [\"198.18.0.0/33\"]\n");
        assert!(
            e.starts_with("p.toml:2:10: groups.web.hosts[1]: \"198.18.0.0/33\" is not a valid CIDR"),
            "{e}"
        );
        let e = err("[[allow]]\nports = 22\nhosts = [\"webb\"]\n");
        assert!(e.starts_with("p.toml:3:10: allow[1].hosts[1]: no group named \"webb\""), "{e}");
        let e = err("[[allow]\nports = 22\n");
        assert!(e.starts_with("p.toml:1:"), "{e}");
        assert!(e.contains("invalid TOML"), "{e}");
        let e = err("[[allow]]\nports = \"10-1\"\n");
        assert!(e.contains("runs backwards"), "{e}");
        let e = err("[[allow]]\nports = 22\nexpires = 2027-02-30\n");
        assert!(e.starts_with("p.toml:3:11: allow[1].expires: invalid TOML"), "{e}");
        let e = err("[[allow]]\nports = 22\n[[allow]]\nports = 23\nexpires = \"2027-02-30\"\n");
        assert!(e.starts_with("p.toml:5:11: allow[2].expires: \"2027-02-30\" is not a date"), "{e}");
    }

    #[test]
    fn every_problem_is_reported() {
        let e = err("[[allow]]\nports = 70000\n\n[[allow]]\nports = 22\ntransport = \"icmp\"\n");
        assert_eq!(e.lines().count(), 2, "{e}");
        assert!(e.lines().nth(1).is_some_and(|l| l.starts_with("p.toml:6:13: allow[2].transport:")), "{e}");
    }

    #[test]
    fn ports_merge_and_hosts_resolve() {
        let p = Policy::parse_str(
            "p.toml",
            "[groups.db]\nhosts = [\"198.18.2.0/24\", \"db1.example.org\", \"host:db2\"]\n\
             [[allow]]\nhosts = [\"db\", \"localhost\"]\nports = [5432, \"5433-5435\", \"5436\"]\n",
        )
        .expect("valid");
        let e = &p.entries[0];
        assert_eq!(e.ports, vec![(5432, 5436)]);
        assert_eq!(e.hosts.len(), 4);
        assert_eq!(e.hosts[2], HostSel::Name("db2".into()));
        assert_eq!(e.hosts[3], HostSel::Localhost);
    }
}
