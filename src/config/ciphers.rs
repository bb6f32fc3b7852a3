//! `<Https CipherSuite>`: OpenSSL cipher strings mapped onto the suites rustls has.
//!
//! The guide says the expression "follows OpenSSL 1.0.0E". rustls (ring provider)
//! offers TLS 1.3's three suites, always on, and six ECDHE AEAD suites of TLS 1.2.
//! An expression is evaluated as OpenSSL does (left to right: add, `-` remove, `!`
//! remove for good, `+` move to the end, `A+B` both) over a table of the suites
//! OpenSSL 1.0 knew, so old expressions keep their meaning; the suites rustls lacks
//! (RSA key exchange, CBC, 3DES, RC4, export, anonymous, NULL) are "legacy".

use rustls::CipherSuite as Id;

/// A cipher suite as `openssl ciphers -v` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    /// OpenSSL name (`ECDHE-RSA-AES128-GCM-SHA256`).
    pub name: &'static str,
    /// Lowest protocol version it belongs to (`TLSv1.2`, `SSLv3`, `TLSv1`).
    pub ver: &'static str,
    /// Key exchange (`ECDH`, `DH`, `RSA`, `any` for TLS 1.3).
    pub kx: &'static str,
    /// Authentication (`RSA`, `ECDSA`, `None`, `any`).
    pub au: &'static str,
    /// Encryption with its key bits (`AESGCM(128)`).
    pub enc: &'static str,
    /// MAC (`AEAD`, `SHA1`, `SHA256`, `SHA384`, `MD5`).
    pub mac: &'static str,
    /// OpenSSL's strength class (`HIGH`, `MEDIUM`, `LOW`, `EXP`).
    strength: &'static str,
    /// The rustls suite, `None` for a legacy suite kura cannot offer.
    pub rustls: Option<Id>,
}

/// A table row: name, ver, kx, au, enc, mac, strength, then the rustls suite.
const fn s(d: [&'static str; 7], rustls: Option<Id>) -> Suite {
    let [name, ver, kx, au, enc, mac, strength] = d;
    Suite {
        name,
        ver,
        kx,
        au,
        enc,
        mac,
        strength,
        rustls,
    }
}

/// TLS 1.3's suites: always offered, never selected by the expression (OpenSSL too
/// keeps them out of the cipher string), listed first as `openssl ciphers` does.
#[rustfmt::skip]
pub const TLS13: [Suite; 3] = [
    s(["TLS_AES_256_GCM_SHA384", "TLSv1.3", "any", "any", "AESGCM(256)", "AEAD", "HIGH"], Some(Id::TLS13_AES_256_GCM_SHA384)),
    s(["TLS_CHACHA20_POLY1305_SHA256", "TLSv1.3", "any", "any", "CHACHA20/POLY1305(256)", "AEAD", "HIGH"], Some(Id::TLS13_CHACHA20_POLY1305_SHA256)),
    s(["TLS_AES_128_GCM_SHA256", "TLSv1.3", "any", "any", "AESGCM(128)", "AEAD", "HIGH"], Some(Id::TLS13_AES_128_GCM_SHA256)),
];

/// The TLS 1.2 and older suites an expression selects from, in the order an
/// expression that adds several of them at once lists them (strongest first).
#[rustfmt::skip]
pub const TABLE: &[Suite] = &[
    s(["ECDHE-ECDSA-AES256-GCM-SHA384", "TLSv1.2", "ECDH", "ECDSA", "AESGCM(256)", "AEAD", "HIGH"], Some(Id::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384)),
    s(["ECDHE-RSA-AES256-GCM-SHA384", "TLSv1.2", "ECDH", "RSA", "AESGCM(256)", "AEAD", "HIGH"], Some(Id::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384)),
    s(["ECDHE-ECDSA-CHACHA20-POLY1305", "TLSv1.2", "ECDH", "ECDSA", "CHACHA20/POLY1305(256)", "AEAD", "HIGH"], Some(Id::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256)),
    s(["ECDHE-RSA-CHACHA20-POLY1305", "TLSv1.2", "ECDH", "RSA", "CHACHA20/POLY1305(256)", "AEAD", "HIGH"], Some(Id::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256)),
    s(["ECDHE-ECDSA-AES128-GCM-SHA256", "TLSv1.2", "ECDH", "ECDSA", "AESGCM(128)", "AEAD", "HIGH"], Some(Id::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256)),
    s(["ECDHE-RSA-AES128-GCM-SHA256", "TLSv1.2", "ECDH", "RSA", "AESGCM(128)", "AEAD", "HIGH"], Some(Id::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256)),
    s(["DHE-RSA-AES256-GCM-SHA384", "TLSv1.2", "DH", "RSA", "AESGCM(256)", "AEAD", "HIGH"], None),
    s(["DHE-RSA-CHACHA20-POLY1305", "TLSv1.2", "DH", "RSA", "CHACHA20/POLY1305(256)", "AEAD", "HIGH"], None),
    s(["DHE-RSA-AES128-GCM-SHA256", "TLSv1.2", "DH", "RSA", "AESGCM(128)", "AEAD", "HIGH"], None),
    s(["ECDHE-ECDSA-AES256-SHA384", "TLSv1.2", "ECDH", "ECDSA", "AES(256)", "SHA384", "HIGH"], None),
    s(["ECDHE-RSA-AES256-SHA384", "TLSv1.2", "ECDH", "RSA", "AES(256)", "SHA384", "HIGH"], None),
    s(["DHE-RSA-AES256-SHA256", "TLSv1.2", "DH", "RSA", "AES(256)", "SHA256", "HIGH"], None),
    s(["ECDHE-ECDSA-AES128-SHA256", "TLSv1.2", "ECDH", "ECDSA", "AES(128)", "SHA256", "HIGH"], None),
    s(["ECDHE-RSA-AES128-SHA256", "TLSv1.2", "ECDH", "RSA", "AES(128)", "SHA256", "HIGH"], None),
    s(["DHE-RSA-AES128-SHA256", "TLSv1.2", "DH", "RSA", "AES(128)", "SHA256", "HIGH"], None),
    s(["ECDHE-ECDSA-AES256-SHA", "TLSv1", "ECDH", "ECDSA", "AES(256)", "SHA1", "HIGH"], None),
    s(["ECDHE-RSA-AES256-SHA", "TLSv1", "ECDH", "RSA", "AES(256)", "SHA1", "HIGH"], None),
    s(["DHE-RSA-AES256-SHA", "SSLv3", "DH", "RSA", "AES(256)", "SHA1", "HIGH"], None),
    s(["ECDHE-ECDSA-AES128-SHA", "TLSv1", "ECDH", "ECDSA", "AES(128)", "SHA1", "HIGH"], None),
    s(["ECDHE-RSA-AES128-SHA", "TLSv1", "ECDH", "RSA", "AES(128)", "SHA1", "HIGH"], None),
    s(["DHE-RSA-AES128-SHA", "SSLv3", "DH", "RSA", "AES(128)", "SHA1", "HIGH"], None),
    s(["AES256-GCM-SHA384", "TLSv1.2", "RSA", "RSA", "AESGCM(256)", "AEAD", "HIGH"], None),
    s(["AES128-GCM-SHA256", "TLSv1.2", "RSA", "RSA", "AESGCM(128)", "AEAD", "HIGH"], None),
    s(["AES256-SHA256", "TLSv1.2", "RSA", "RSA", "AES(256)", "SHA256", "HIGH"], None),
    s(["AES128-SHA256", "TLSv1.2", "RSA", "RSA", "AES(128)", "SHA256", "HIGH"], None),
    s(["AES256-SHA", "SSLv3", "RSA", "RSA", "AES(256)", "SHA1", "HIGH"], None),
    s(["AES128-SHA", "SSLv3", "RSA", "RSA", "AES(128)", "SHA1", "HIGH"], None),
    s(["ADH-AES256-GCM-SHA384", "TLSv1.2", "DH", "None", "AESGCM(256)", "AEAD", "HIGH"], None),
    s(["ADH-AES128-SHA", "SSLv3", "DH", "None", "AES(128)", "SHA1", "HIGH"], None),
    s(["AECDH-AES128-SHA", "TLSv1", "ECDH", "None", "AES(128)", "SHA1", "HIGH"], None),
    s(["ECDHE-RSA-DES-CBC3-SHA", "TLSv1", "ECDH", "RSA", "3DES(168)", "SHA1", "MEDIUM"], None),
    s(["DES-CBC3-SHA", "SSLv3", "RSA", "RSA", "3DES(168)", "SHA1", "MEDIUM"], None),
    s(["ECDHE-RSA-RC4-SHA", "TLSv1", "ECDH", "RSA", "RC4(128)", "SHA1", "MEDIUM"], None),
    s(["RC4-SHA", "SSLv3", "RSA", "RSA", "RC4(128)", "SHA1", "MEDIUM"], None),
    s(["RC4-MD5", "SSLv3", "RSA", "RSA", "RC4(128)", "MD5", "MEDIUM"], None),
    s(["ADH-RC4-MD5", "SSLv3", "DH", "None", "RC4(128)", "MD5", "MEDIUM"], None),
    s(["DES-CBC-SHA", "SSLv3", "RSA", "RSA", "DES(56)", "SHA1", "LOW"], None),
    s(["EXP-DES-CBC-SHA", "SSLv3", "RSA(512)", "RSA", "DES(40)", "SHA1", "EXP"], None),
    s(["EXP-RC4-MD5", "SSLv3", "RSA(512)", "RSA", "RC4(40)", "MD5", "EXP"], None),
    s(["NULL-SHA256", "TLSv1.2", "RSA", "RSA", "None", "SHA256", "LOW"], None),
    s(["NULL-SHA", "SSLv3", "RSA", "RSA", "None", "SHA1", "LOW"], None),
    s(["NULL-MD5", "SSLv3", "RSA", "RSA", "None", "MD5", "LOW"], None),
];

impl Suite {
    /// Whether the suite belongs to an OpenSSL alias (`kECDHE`, `AESGCM`, `HIGH`...).
    fn is(&self, alias: &str) -> bool {
        let enc = self.enc.split('(').next().unwrap_or("");
        let bits = self
            .enc
            .split('(')
            .nth(1)
            .unwrap_or("")
            .trim_end_matches(')');
        let null_enc = enc == "None";
        match alias.to_ascii_uppercase().as_str() {
            "ALL" => !null_enc,
            // OpenSSL 1.0's DEFAULT is ALL without the anonymous and NULL suites.
            "DEFAULT" => !null_enc && self.au != "None",
            "COMPLEMENTOFDEFAULT" => !null_enc && self.au == "None",
            "COMPLEMENTOFALL" | "ENULL" | "NULL" => null_enc,
            "HIGH" | "MEDIUM" | "LOW" => self.strength.eq_ignore_ascii_case(alias),
            "EXP" | "EXPORT" | "EXPORT40" => self.strength == "EXP",
            "KRSA" | "RSA" => self.kx.starts_with("RSA"),
            "ARSA" => self.au == "RSA",
            "KECDHE" | "KEECDH" | "ECDHE" | "EECDH" | "ECDH" | "KECDH" => {
                self.kx == "ECDH" && self.au != "None"
            }
            "AECDH" => self.kx == "ECDH" && self.au == "None",
            "KDHE" | "KEDH" | "DHE" | "EDH" | "DH" | "KDH" => self.kx == "DH" && self.au != "None",
            "ADH" => self.kx == "DH" && self.au == "None",
            "ANULL" => self.au == "None",
            "AECDSA" | "ECDSA" => self.au == "ECDSA",
            "AES" => enc == "AES" || enc == "AESGCM",
            "AES128" => (enc == "AES" || enc == "AESGCM") && bits == "128",
            "AES256" => (enc == "AES" || enc == "AESGCM") && bits == "256",
            "AESGCM" => enc == "AESGCM",
            "CHACHA20" => enc == "CHACHA20/POLY1305",
            "3DES" => enc == "3DES",
            "DES" => enc == "DES",
            "RC4" => enc == "RC4",
            "MD5" => self.mac == "MD5",
            "SHA1" | "SHA" => self.mac == "SHA1",
            "SHA256" => self.mac == "SHA256",
            "SHA384" => self.mac == "SHA384",
            "TLSV1.2" => self.ver == "TLSv1.2",
            // OpenSSL 1.0: the TLSv1 suites are the SSLv3 ones.
            "TLSV1" | "SSLV3" => self.ver != "TLSv1.2",
            "FS" => self.kx == "ECDH" || self.kx == "DH",
            _ => self.name.eq_ignore_ascii_case(alias),
        }
    }
}

/// Whether `word` names anything in the table (a suite or an alias).
fn known(word: &str) -> bool {
    TABLE.iter().any(|s| s.is(word))
        || matches!(
            word.to_ascii_uppercase().as_str(),
            // Aliases that select nothing in this table, but are OpenSSL's.
            "EXPORT56"
                | "SSLV2"
                | "PSK"
                | "SRP"
                | "KRB5"
                | "CAMELLIA"
                | "SEED"
                | "IDEA"
                | "GOST94"
                | "GOST89MAC"
                | "AESCCM"
                | "ARIA"
        )
}

/// What an expression selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    /// Every selected suite, in the expression's order.
    pub suites: Vec<&'static Suite>,
    /// Words that name neither a suite nor an alias (OpenSSL skips them too).
    pub unknown: Vec<String>,
}

impl Selection {
    /// The selected suites rustls offers, in order.
    pub fn supported(&self) -> impl Iterator<Item = &'static Suite> + '_ {
        self.suites.iter().copied().filter(|s| s.rustls.is_some())
    }

    /// The selected suites rustls lacks.
    pub fn legacy(&self) -> impl Iterator<Item = &'static Suite> + '_ {
        self.suites.iter().copied().filter(|s| s.rustls.is_none())
    }

    /// The TLS 1.2 suites to offer, or why there are none: an expression that
    /// selects only legacy suites (or nothing) would leave TLS 1.2 clients out
    /// silently, so it is refused.
    pub fn offered(&self) -> Result<Vec<Id>, String> {
        let ids: Vec<Id> = self.supported().filter_map(|s| s.rustls).collect();
        if !ids.is_empty() {
            return Ok(ids);
        }
        let legacy: Vec<&str> = self.legacy().map(|s| s.name).collect();
        Err(if legacy.is_empty() {
            "selects no cipher suite".to_string()
        } else {
            format!(
                "selects only legacy suites kura does not offer ({}); kura's TLS 1.2 suites are {}",
                legacy.join(", "),
                TABLE
                    .iter()
                    .filter(|s| s.rustls.is_some())
                    .map(|s| s.name)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
    }
}

/// Evaluates an OpenSSL cipher string.
pub fn select(expr: &str) -> Selection {
    let mut list: Vec<usize> = Vec::new();
    let mut killed: Vec<usize> = Vec::new();
    let mut unknown = Vec::new();
    for token in expr
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|t| !t.is_empty())
    {
        let (op, rest) = match token.chars().next() {
            Some(c @ ('!' | '-' | '+')) => (Some(c), &token[1..]),
            _ => (None, token),
        };
        // `@STRENGTH`, `@SECLEVEL=n`: ordering and security levels, nothing to select.
        if rest.starts_with('@') || rest.is_empty() {
            continue;
        }
        let words: Vec<&str> = rest.split('+').filter(|w| !w.is_empty()).collect();
        for w in words.iter().filter(|w| !known(w)) {
            unknown.push((*w).to_string());
        }
        let matched: Vec<usize> = (0..TABLE.len())
            .filter(|&i| words.iter().all(|w| TABLE[i].is(w)))
            .collect();
        match op {
            None => {
                for i in matched {
                    if !killed.contains(&i) && !list.contains(&i) {
                        list.push(i);
                    }
                }
            }
            Some('+') => {
                let (moved, kept): (Vec<usize>, Vec<usize>) =
                    list.iter().partition(|i| matched.contains(i));
                list = kept;
                list.extend(moved);
            }
            Some('-') => list.retain(|i| !matched.contains(i)),
            _ => {
                list.retain(|i| !matched.contains(i));
                killed.extend(matched);
            }
        }
    }
    Selection {
        suites: list.into_iter().map(|i| &TABLE[i]).collect(),
        unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(expr: &str) -> Vec<&'static str> {
        select(expr).suites.iter().map(|s| s.name).collect()
    }

    #[test]
    fn every_supported_suite_is_one_rustls_has() {
        let ring: Vec<Id> = rustls::crypto::ring::ALL_CIPHER_SUITES
            .iter()
            .map(|s| s.suite())
            .collect();
        for s in TABLE.iter().chain(&TLS13) {
            if let Some(id) = s.rustls {
                assert!(ring.contains(&id), "{}", s.name);
            }
        }
        assert_eq!(
            TABLE
                .iter()
                .chain(&TLS13)
                .filter(|s| s.rustls.is_some())
                .count(),
            ring.len()
        );
    }

    #[test]
    fn openssl_operators() {
        assert_eq!(
            names("ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"),
            ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"]
        );
        // `+` moves to the end, `-` removes, `!` removes for good.
        assert_eq!(
            names("AESGCM+ECDHE+aRSA:+AES256"),
            ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"]
        );
        assert!(names("ECDHE:-CHACHA20")
            .iter()
            .all(|n| !n.contains("CHACHA")));
        assert_eq!(names("!RC4:RC4-SHA:RC4"), Vec::<&str>::new());
        assert_eq!(names("-RC4:RC4-SHA"), ["RC4-SHA"]);
        assert_eq!(names("HIGH:!aNULL:!MD5:@STRENGTH").len(), 27);
        assert!(names("ALL").iter().all(|n| !n.starts_with("NULL")));
    }

    #[test]
    fn legacy_only_is_refused_and_mixed_keeps_the_supported() {
        let rc4 = select("RC4");
        assert!(rc4.offered().unwrap_err().contains("RC4-SHA"));
        let guide = select("ALL:!ADH:RC4+RSA:+HIGH:+MEDIUM:+LOW:+SSLv2:+EXP");
        assert_eq!(guide.offered().unwrap().len(), 6);
        assert!(guide.legacy().any(|s| s.name == "RC4-MD5"));
        assert_eq!(
            select("NOPE").offered().unwrap_err(),
            "selects no cipher suite"
        );
        assert_eq!(select("NOPE:HIGH").unknown, ["NOPE"]);
    }
}
