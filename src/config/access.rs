//! `<Host><ServiceAccess>` (chapter 14, server access control): which client
//! addresses may connect to the service ports, decided once per connection.

use super::node::{Node, Unused};
use super::value::{self, IpRule};
use super::Cx;

/// What a rule, or the default, does with a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `<Allow>`: the connection is served.
    Allow,
    /// `<Deny>`: the connection is closed at once and written to the deny log.
    Deny,
}

impl Verdict {
    fn parse(s: &str) -> Result<Verdict, String> {
        match s.to_ascii_lowercase().as_str() {
            "allow" => Ok(Verdict::Allow),
            "deny" => Ok(Verdict::Deny),
            _ => Err(format!("unknown value \"{s}\" (Allow or Deny)")),
        }
    }
}

/// One `<Allow>` or `<Deny>` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    /// Allow or deny.
    pub verdict: Verdict,
    /// The addresses it covers.
    pub ip: IpRule,
    /// The rule as written: the deny log's `deny` field names the condition that matched.
    pub written: String,
}

/// `<ServiceAccess>`: rules in file order, the first match decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccess {
    /// `<Allow>`/`<Deny>` in file order (country codes are left out: no GeoIP).
    pub rules: Vec<AccessRule>,
    /// `Default`: the verdict when no rule matches (Allow unless written).
    pub default: Verdict,
}

impl Default for ServiceAccess {
    fn default() -> Self {
        ServiceAccess {
            rules: Vec::new(),
            default: Verdict::Allow,
        }
    }
}

/// The deny log's condition when `Default="Deny"` refused an address no rule names.
pub const DEFAULT_CONDITION: &str = "Default";

impl ServiceAccess {
    /// The verdict for a client at `ip`, and the condition that decided it (the
    /// matching rule as written, or [`DEFAULT_CONDITION`]).
    pub fn decide(&self, ip: std::net::IpAddr) -> (Verdict, &str) {
        self.rules
            .iter()
            .find(|r| r.ip.matches(ip))
            .map_or((self.default, DEFAULT_CONDITION), |r| {
                (r.verdict, r.written.as_str())
            })
    }
}

/// Whether a rule is an ISO 3166-1 country code (alpha-2 or alpha-3), a GeoIP rule.
fn is_country_code(s: &str) -> bool {
    (2..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Reads `<Host><ServiceAccess>`.
pub(super) fn read(cx: &mut Cx, host: &Node<'_>) -> ServiceAccess {
    let access = host.child("ServiceAccess");
    let default = cx.get(access.attr("Default"), Verdict::parse, Verdict::Allow);
    let mut rules = Vec::new();
    for el in access.ordered(&["Allow", "Deny"]) {
        let verdict = if el.name == "Allow" {
            Verdict::Allow
        } else {
            Verdict::Deny
        };
        let path = format!("Server/Host/ServiceAccess/{}", el.name);
        let Some(v) = Node::new(Some(el), None, &path).value() else {
            continue;
        };
        let written = v.raw.trim();
        // Country rules need GeoIP databases kura does not read: reported, never matched.
        if is_country_code(written) {
            cx.partial.push(Unused {
                path: format!("{path} (GeoIP country code \"{written}\": never matches)"),
                place: el.loc.to_string(),
            });
            continue;
        }
        if let Some(ip) = cx.ok(v.parse(value::ip_rule).map(Some), None) {
            rules.push(AccessRule {
                verdict,
                ip,
                written: written.to_string(),
            });
        }
    }
    ServiceAccess { rules, default }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(default: Verdict, rules: &[(Verdict, &str)]) -> ServiceAccess {
        ServiceAccess {
            default,
            rules: rules
                .iter()
                .map(|(verdict, s)| AccessRule {
                    verdict: *verdict,
                    ip: value::ip_rule(s).unwrap(),
                    written: s.to_string(),
                })
                .collect(),
        }
    }

    #[test]
    fn first_matching_rule_decides() {
        let a = access(
            Verdict::Allow,
            &[
                (Verdict::Allow, "10.0.0.7"),
                (Verdict::Deny, "10.0.0.0/24"),
                (Verdict::Deny, "192.168.7.9-255"),
            ],
        );
        let ip = |s: &str| s.parse().unwrap();
        assert_eq!(a.decide(ip("10.0.0.7")), (Verdict::Allow, "10.0.0.7"));
        assert_eq!(a.decide(ip("10.0.0.8")), (Verdict::Deny, "10.0.0.0/24"));
        assert_eq!(
            a.decide(ip("::ffff:192.168.7.200")),
            (Verdict::Deny, "192.168.7.9-255")
        );
        assert_eq!(a.decide(ip("192.168.7.8")), (Verdict::Allow, "Default"));
    }

    #[test]
    fn default_deny_is_a_whitelist() {
        let a = access(Verdict::Deny, &[(Verdict::Allow, "127.0.0.0/255.0.0.0")]);
        assert_eq!(a.decide("127.0.0.1".parse().unwrap()).0, Verdict::Allow);
        assert_eq!(
            a.decide("10.1.1.1".parse().unwrap()),
            (Verdict::Deny, "Default")
        );
    }

    #[test]
    fn country_codes_are_reported_and_left_out() {
        assert!(is_country_code("AP") && is_country_code("GIN"));
        assert!(!is_country_code("1.2.3.4") && !is_country_code("::1"));
        let server = "<Server><Host>\n<ServiceAccess GeoIP=\"/var/geoip\">\n<Deny>GIN</Deny>\n<Deny>10.0.0.1</Deny>\n</ServiceAccess>\n</Host></Server>";
        let config =
            crate::config::load_str(std::path::Path::new("/nonexistent"), server, "<Vhosts/>")
                .unwrap();
        let access = &config.server.service_access;
        assert_eq!(access.rules.len(), 1);
        assert_eq!(access.rules[0].written, "10.0.0.1");
        let reported: Vec<String> = config
            .not_implemented
            .iter()
            .map(|u| format!("{} {}", u.place, u.path))
            .collect();
        for expected in [
            "server.xml:3 Server/Host/ServiceAccess/Deny (GeoIP country code \"GIN\": never matches)",
            "server.xml:2 Server/Host/ServiceAccess@GeoIP",
        ] {
            assert!(reported.iter().any(|r| r == expected), "{reported:?}");
        }
    }
}
