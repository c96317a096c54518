//! Network namespaces: which exist, what to call them, and running a dump inside one.

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::Error;
use crate::sys;

/// A network namespace that can be entered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    /// nsfs inode.
    pub inode: u64,
    /// `ip netns` name, container or unit, or `host`.
    pub name: String,
    /// Whether Portolan runs in it.
    pub current: bool,
    /// A path that opens it (`/run/netns/NAME` or `/proc/PID/ns/net`).
    pub path: PathBuf,
}

/// Inode of the network namespace this process runs in.
pub fn current_inode() -> Result<u64, Error> {
    std::fs::metadata("/proc/self/ns/net")
        .map(|m| m.ino())
        .map_err(|source| Error::Read { path: "/proc/self/ns/net".into(), source })
}

/// A readable name from a cgroup path: the container or systemd unit.
pub fn name_from_cgroup(path: &str) -> Option<String> {
    let last = path.trim_end_matches('/').rsplit('/').next()?;
    if last.is_empty() {
        return None;
    }
    let unit = last.strip_suffix(".scope").or_else(|| last.strip_suffix(".service")).unwrap_or(last);
    for (prefix, kind) in
        [("docker-", "docker"), ("cri-containerd-", "containerd"), ("crio-", "cri-o"), ("libpod-", "podman")]
    {
        if let Some(id) = unit.strip_prefix(prefix) {
            return Some(format!("{kind}:{}", &id[..id.len().min(12)]));
        }
    }
    Some(unit.to_string())
}

fn cgroup_of(pid: u32) -> Option<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    // cgroup v2 line "0::/path"; else the first line's path
    let line = text.lines().find(|l| l.starts_with("0::")).or_else(|| text.lines().next())?;
    line.splitn(3, ':').nth(2).map(str::to_string)
}

fn comm_of(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|s| s.trim().to_string()).unwrap_or_default()
}

/// Every network namespace: the current one, the named ones under `/run/netns`, and those of
/// running processes (`/proc/*/ns/net`), each once.
pub fn enumerate() -> Result<Vec<Namespace>, Error> {
    let current = current_inode()?;
    let mut found: BTreeMap<u64, Namespace> = BTreeMap::new();
    found.insert(
        current,
        Namespace {
            inode: current,
            name: "host".into(),
            current: true,
            path: PathBuf::from("/proc/self/ns/net"),
        },
    );
    if let Ok(dir) = std::fs::read_dir("/run/netns") {
        let mut named: Vec<(String, PathBuf)> = dir
            .filter_map(|e| e.ok())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
            .collect();
        named.sort();
        for (name, path) in named {
            let Ok(m) = std::fs::metadata(&path) else { continue };
            let inode = m.ino();
            match found.get_mut(&inode) {
                Some(ns) if ns.current => ns.name = format!("host ({name})"),
                Some(_) => {}
                None => {
                    found.insert(inode, Namespace { inode, name, current: false, path });
                }
            }
        }
    }
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .map_err(|source| Error::Read { path: "/proc".into(), source })?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    for pid in pids {
        let path = PathBuf::from(format!("/proc/{pid}/ns/net"));
        let Ok(m) = std::fs::metadata(&path) else { continue };
        let inode = m.ino();
        if found.contains_key(&inode) {
            continue;
        }
        let name = cgroup_of(pid)
            .and_then(|c| name_from_cgroup(&c))
            .filter(|n| n != "/" && !n.is_empty())
            .map(|n| format!("{n} (pid {pid})"))
            .unwrap_or_else(|| format!("pid {pid} ({})", comm_of(pid)));
        found.insert(inode, Namespace { inode, name, current: false, path });
    }
    Ok(found.into_values().collect())
}

/// Runs `f` on a thread that has entered the namespace at `path` (needs CAP_SYS_ADMIN).
pub fn run_in<T: Send>(path: &Path, f: impl FnOnce() -> Result<T, Error> + Send) -> Result<T, Error> {
    let file = std::fs::File::open(path)
        .map_err(|source| Error::Read { path: path.display().to_string(), source })?;
    std::thread::scope(|s| {
        s.spawn(move || {
            sys::setns_net(file.as_fd())
                .map_err(|source| Error::Setns { path: path.display().to_string(), source })?;
            f()
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::Setns {
                path: path.display().to_string(),
                source: std::io::Error::other("thread failed"),
            })
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_cgroups() {
        assert_eq!(
            name_from_cgroup("/system.slice/docker-0123456789abcdef0123.scope").as_deref(),
            Some("docker:0123456789ab")
        );
        assert_eq!(name_from_cgroup("/system.slice/nginx.service").as_deref(), Some("nginx"));
        assert_eq!(name_from_cgroup("/").as_deref(), None);
    }

    #[test]
    fn the_current_namespace_is_listed_first_or_named_host() {
        let all = enumerate().unwrap();
        assert!(all.iter().any(|n| n.current && n.name.starts_with("host")));
    }
}
