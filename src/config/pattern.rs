//! URL patterns of the `svc/<vhost>/*.txt` lists and of the purge API: a
//! path where `*` stands for any run of characters (the guide allows only `*`).

/// One pattern such as `/script/*.js`, `*.jsp` or `/index.html`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPattern {
    /// The pattern as written.
    text: String,
    /// The literal pieces between the `*`s.
    pieces: Vec<String>,
}

impl UrlPattern {
    /// Parses a pattern; a leading `*` matches any directory, otherwise the pattern
    /// is anchored at the start of the path.
    pub fn new(text: &str) -> UrlPattern {
        UrlPattern {
            text: text.to_string(),
            pieces: text.split('*').map(str::to_string).collect(),
        }
    }

    /// Whether it contains a `*`.
    pub fn is_wildcard(&self) -> bool {
        self.pieces.len() > 1
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `s` matches the whole pattern.
    pub fn matches(&self, s: &str) -> bool {
        let (first, rest) = self.pieces.split_first().expect("split yields one piece");
        let Some(mut tail) = s.strip_prefix(first.as_str()) else {
            return false;
        };
        let Some((last, middle)) = rest.split_last() else {
            return tail.is_empty();
        };
        for piece in middle {
            match tail.find(piece.as_str()) {
                Some(i) => tail = &tail[i + piece.len()..],
                None => return false,
            }
        }
        tail.ends_with(last.as_str())
    }
}

/// Parses a `svc/<vhost>/*.txt` list: one entry per line, `#` comments and blank
/// lines skipped. Each entry is split on its first comma into the pattern and
/// the rest; `value` parses the rest (`None` when the line has no comma).
/// Errors read `svc/<vhost>/ttl.txt:3: ...`.
pub fn parse_list<T>(
    file: &str,
    text: &str,
    mut value: impl FnMut(Option<&str>) -> Result<T, String>,
) -> Result<Vec<(UrlPattern, T)>, super::ConfigError> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (pattern, rest) = match line.split_once(',') {
            Some((p, r)) => (p.trim(), Some(r.trim())),
            None => (line, None),
        };
        let at = |m: String| super::ConfigError::file(format!("{file}:{}", n + 1), m);
        if pattern.is_empty() {
            return Err(at("empty URL pattern".into()));
        }
        let v = value(rest).map_err(at)?;
        out.push((UrlPattern::new(pattern), v));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stars_match_any_run_and_literals_anchor() {
        let p = |s| UrlPattern::new(s);
        assert!(p("*.jsp").matches("/a/b/index.jsp"));
        assert!(!p("*.jsp").matches("/a/index.jsp?x=1"));
        assert!(p("/script/*.js").matches("/script/a/b.js"));
        assert!(!p("/script/*.js").matches("/other/script/a.js"));
        assert!(p("/").matches("/"));
        assert!(!p("/").matches("/index.html"));
        assert!(p("/img/*").matches("/img/"));
        assert!(p("/a*b*c").matches("/aXbYc"));
        assert!(!p("/a*b*c").matches("/aXcYb"));
        assert!(p("/private/personal.jsp?login=ok*").matches("/private/personal.jsp?login=ok&x"));
    }

    #[test]
    fn lists_report_file_and_line() {
        let ok = parse_list("ttl.txt", "# c\n*.jsp, 10\n\n/, 5\n", |v| {
            v.ok_or("no TTL".to_string())?
                .parse::<u32>()
                .map_err(|e| e.to_string())
        })
        .unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].1, 5);
        let err = parse_list("svc/w/ttl.txt", "/a, 1\n/b\n", |v| {
            v.ok_or("missing TTL".to_string()).map(|_| ())
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "svc/w/ttl.txt:2: missing TTL");
    }
}
