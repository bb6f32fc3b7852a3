//! Chapter 9 `<Https>` blocks: where each certificate is served, its files
//! (loaded and checked here, so a bad pair is a placed configuration error and a
//! reload rereads them), its protocol versions and cipher suites.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use super::ciphers;
use super::node::{Node, Unused};
use super::value::{self, Listen};
use super::xml::Element;
use super::Cx;

/// Port of an `<Https>` whose `Listen` names no port (the guide's default `*:443`).
const HTTPS_PORT: u16 = 443;

/// One `<Https>` block.
#[derive(Debug, Clone)]
pub struct HttpsConfig {
    /// `Listen`: `*:port` or `IP:port` (an IP alone means port 443).
    pub listen: Listen,
    /// `<Cert>` followed by `<CA>`, and `<Key>`; the key matches the certificate.
    pub key: Arc<CertifiedKey>,
    /// `TLS1.2`: offer TLS 1.2 besides TLS 1.3.
    pub tls12: bool,
    /// `CipherSuite`: the TLS 1.2 suites, in preference order.
    pub suites: Vec<rustls::CipherSuite>,
    /// `FS` ON: kura's suite order wins over the client's (every suite kura has is
    /// forward secret, so FS can only mean the order).
    pub server_order: bool,
}

/// Reads every `<Https>` of `<Server>` and `<Cache><HttpsSNI>`.
pub(super) fn read(cx: &mut Cx, server: &Node<'_>, root: &Element) -> Vec<HttpsConfig> {
    // kura always selects by SNI (ARCHITECTURE.md decision 79): both values are valid.
    let _ = cx.get(
        server.child("Cache").child("HttpsSNI").value(),
        value::on_off,
        false,
    );
    let mut blocks = Vec::new();
    let mut legacy_protocols: Vec<&str> = Vec::new();
    for el in root.children_named("Https") {
        let n = Node::new(Some(el), None, "Server/Https");
        let listen = cx.get(n.attr("Listen"), listen, Listen::AnyIp(HTTPS_PORT));
        let tls12 = cx.get(n.attr("TLS1.2"), value::on_off, true);
        let server_order = cx.get(n.attr("FS"), value::on_off, true);
        for old in ["TLS1.1", "TLS1.0", "SSL3.0"] {
            let on = n.attr(old).filter(|v| v.loc.is_some());
            if cx.get(on, value::on_off, false) && !legacy_protocols.contains(&old) {
                legacy_protocols.push(old);
                cx.partial.push(Unused {
                    path: format!("Server/Https@{old} (rustls has no {old}; TLS 1.2 and 1.3 only)"),
                    place: el.loc.to_string(),
                });
            }
        }
        let suites = match n.attr("CipherSuite").filter(|v| !v.raw.trim().is_empty()) {
            None => default_suites(),
            Some(v) => {
                let selection = ciphers::select(v.raw);
                let ignored: Vec<String> = selection
                    .legacy()
                    .map(|s| s.name.to_string())
                    .chain(selection.unknown.iter().map(|w| format!("{w} (unknown)")))
                    .collect();
                match selection.offered() {
                    Ok(ids) => {
                        if !ignored.is_empty() {
                            cx.partial.push(Unused {
                                path: format!(
                                    "Server/Https@CipherSuite (ignored: {})",
                                    ignored.join(", ")
                                ),
                                place: el.loc.to_string(),
                            });
                        }
                        ids
                    }
                    Err(why) => {
                        cx.errors.push(v.error(why));
                        default_suites()
                    }
                }
            }
        };
        if let Some(key) = certified_key(cx, &n) {
            blocks.push(HttpsConfig {
                listen,
                key: Arc::new(key),
                tls12,
                suites,
                server_order,
            });
        }
    }
    blocks
}

/// Every TLS 1.2 suite kura has, in its preference order (an unwritten `CipherSuite`).
fn default_suites() -> Vec<rustls::CipherSuite> {
    ciphers::TABLE.iter().filter_map(|s| s.rustls).collect()
}

/// `Listen`: `IP:port`, `*:port`, `[v6]:port`, or an IP alone (port 443). NIC names
/// are refused: an interface's addresses can change under a running daemon.
fn listen(s: &str) -> Result<Listen, String> {
    if let Ok(ip) = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        return Ok(Listen::Addr(SocketAddr::new(ip, HTTPS_PORT)));
    }
    match value::listen(s) {
        Ok(Listen::Off) => Err("an <Https> cannot be OFF (remove the block)".to_string()),
        Ok(l) => Ok(l),
        Err(_) if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c)) => {
            Err(format!(
                "\"{s}\" looks like a network interface name; kura needs its IP address (Listen=\"10.0.0.1\" or \"10.0.0.1:443\")"
            ))
        }
        Err(e) => Err(format!("{e} (IP:port, *:port or IP)")),
    }
}

/// Loads `<Cert>` + `<CA>` and `<Key>` and checks the key belongs to the certificate.
fn certified_key(cx: &mut Cx, n: &Node<'_>) -> Option<CertifiedKey> {
    let (cert_n, key_n, ca_n) = (n.child("Cert"), n.child("Key"), n.child("CA"));
    let mut file = |node: &Node<'_>, what: &str| -> Option<(String, Vec<u8>)> {
        let Some(v) = node.value().filter(|v| !v.raw.trim().is_empty()) else {
            if what != "CA" {
                cx.errors.push(n.error(format!(
                    "<{what}> is missing: an <Https> needs a certificate and its key"
                )));
            }
            return None;
        };
        let path = v.raw.trim().to_string();
        match std::fs::read(Path::new(&path)) {
            Ok(bytes) => Some((path, bytes)),
            Err(e) => {
                cx.errors.push(v.error(format!("{path}: cannot read: {e}")));
                None
            }
        }
    };
    let cert = file(&cert_n, "Cert");
    let key = file(&key_n, "Key");
    let ca = file(&ca_n, "CA");
    let (cert_path, cert_pem) = cert?;
    let mut chain = match certificates(&cert_path, &cert_pem) {
        Ok(c) => c,
        Err(e) => {
            cx.errors.push(cert_n.error(e));
            return None;
        }
    };
    if let Some((ca_path, ca_pem)) = ca {
        match certificates(&ca_path, &ca_pem) {
            Ok(c) => chain.extend(c),
            Err(e) => cx.errors.push(ca_n.error(e)),
        }
    }
    let (key_path, key_pem) = key?;
    let loaded = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| match e {
            rustls::pki_types::pem::Error::NoItemsFound => {
                format!("{key_path}: no unencrypted PRIVATE KEY in the file (PEM, PKCS#8, PKCS#1 or SEC1)")
            }
            e => format!("{key_path}: not a PEM private key: {e}"),
        })
        .and_then(|der| {
            rustls::crypto::ring::default_provider()
                .key_provider
                .load_private_key(der)
                .map_err(|e| format!("{key_path}: unsupported private key: {e}"))
        })
        .and_then(|signer| {
            let mut certified = CertifiedKey::new(chain, signer);
            // A DER OCSP response beside the certificate (`<Cert>.ocsp`, HAProxy's
            // convention) is stapled; refreshing it is the operator's cron job + reload.
            certified.ocsp = std::fs::read(format!("{cert_path}.ocsp")).ok();
            match certified.keys_match() {
                Ok(()) => Ok(certified),
                Err(_) => Err(format!(
                    "{key_path}: key does not match the certificate {cert_path}"
                )),
            }
        });
    loaded.map_err(|e| cx.errors.push(key_n.error(e))).ok()
}

/// The certificates of a PEM file, each one a parseable X.509 certificate.
fn certificates(path: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{path}: not a PEM certificate file: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path}: no CERTIFICATE in the file"));
    }
    for c in &certs {
        webpki::EndEntityCert::try_from(c)
            .map_err(|e| format!("{path}: not an X.509 certificate: {e}"))?;
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        assert_eq!(listen("*:886"), Ok(Listen::AnyIp(886)));
        assert_eq!(
            listen("10.10.10.10"),
            Ok(Listen::Addr("10.10.10.10:443".parse().unwrap()))
        );
        assert_eq!(
            listen("1.1.1.1:8443"),
            Ok(Listen::Addr("1.1.1.1:8443".parse().unwrap()))
        );
        assert_eq!(
            listen("[::1]"),
            Ok(Listen::Addr("[::1]:443".parse().unwrap()))
        );
        assert!(listen("eth0").unwrap_err().contains("interface name"));
        assert!(listen("OFF").is_err());
    }
}
