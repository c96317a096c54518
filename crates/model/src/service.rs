use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The service on a port: what the registry says, or what identification found.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Service {
    /// Service name (`ssh`, `http`, `ms-wbt-server`, ...). `unknown` when nothing is known.
    pub name: String,
    /// Product (`OpenSSH`, `nginx`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product: Option<String>,
    /// Product version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Extra information (`protocol 2.0`, `Ubuntu Linux`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra_info: Option<String>,
    /// Host name the service revealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Operating system the service revealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_type: Option<String>,
    /// Device type the service revealed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    /// Tunnel the service runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunnel: Option<Tunnel>,
    /// How the name was found.
    pub method: ServiceMethod,
    /// Confidence 0-10 (nmap's `conf`): 3 for a registry guess, 10 for a certain match.
    pub confidence: u8,
    /// CPE names (`cpe:/a:openbsd:openssh:9.2p1`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpe: Vec<String>,
}

impl Service {
    /// A registry guess: the name registered for the port, confidence 3, as nmap reports.
    pub fn from_table(name: impl Into<String>) -> Service {
        Service { name: name.into(), method: ServiceMethod::Table, confidence: 3, ..Service::default() }
    }
}

/// How a service name was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ServiceMethod {
    /// Looked up by port number in the registry.
    #[default]
    Table,
    /// Identified by talking to the service.
    Probed,
}

impl ServiceMethod {
    /// nmap's name.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceMethod::Table => "table",
            ServiceMethod::Probed => "probed",
        }
    }
}

/// A tunnel around a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Tunnel {
    /// TLS/SSL.
    Ssl,
}
