//! What a `kafka://` URL says: where the brokers are, how new topics are made, an optional
//! namespace, and librdkafka settings passed through untouched (security, tuning).

use std::path::Path;

use crate::LogError;

/// Settings whose values never appear in messages, reports or `Debug` output.
fn is_secret(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "token", ".key", "jaas"]
        .iter()
        .any(|s| key.contains(s))
}

/// A parsed `kafka://HOST:PORT[,HOST:PORT...]?k=v&...` URL.
///
/// Parameters: `partitions` (new topics, default 3), `replication` (new topics, default: the
/// cluster's `default.replication.factor`), `namespace` (a prefix for every topic and group, so
/// several runs can share a cluster), `config` (a file of librdkafka `key=value` lines, for
/// secrets that should not sit in a URL), and any librdkafka setting (a key with a dot, e.g.
/// `security.protocol=SASL_SSL`). A setting prefixed `producer.` or `consumer.` applies to that
/// kind of client only.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    pub bootstrap: String,
    pub partitions: u32,
    pub replication: Option<i32>,
    pub namespace: Option<String>,
    pub settings: Vec<(String, String)>,
}

/// Which clients a passed-through setting is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientKind {
    Producer,
    Consumer,
    Admin,
}

impl KafkaConfig {
    pub fn new(bootstrap: impl Into<String>) -> Self {
        KafkaConfig {
            bootstrap: bootstrap.into(),
            partitions: crate::url::DEFAULT_PARTITIONS,
            replication: None,
            namespace: None,
            settings: Vec::new(),
        }
    }

    /// Parse what follows `kafka://`. `invalid` builds the error for a reason.
    pub(crate) fn parse(
        rest: &str,
        invalid: &dyn Fn(&str) -> LogError,
    ) -> Result<KafkaConfig, LogError> {
        let (hosts, query) = match rest.split_once('?') {
            Some((h, q)) => (h, Some(q)),
            None => (rest, None),
        };
        let hosts = hosts.trim_end_matches('/');
        if hosts.is_empty() {
            return Err(invalid("missing HOST:PORT of a broker"));
        }
        for host in hosts.split(',') {
            let port = host.rsplit_once(':').map(|(_, p)| p);
            if port.and_then(|p| p.parse::<u16>().ok()).is_none() {
                return Err(invalid(&format!("broker `{host}` has no valid :PORT")));
            }
        }
        let mut config = KafkaConfig::new(hosts);
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let Some((key, value)) = pair.split_once('=') else {
                return Err(invalid(&format!("parameter `{pair}` has no value")));
            };
            match key {
                "partitions" => {
                    config.partitions = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=1024).contains(n))
                        .ok_or_else(|| invalid("partitions must be a number from 1 to 1024"))?;
                }
                "replication" => {
                    config.replication = Some(
                        value
                            .parse()
                            .ok()
                            .filter(|n| (1..=16).contains(n))
                            .ok_or_else(|| invalid("replication must be a number from 1 to 16"))?,
                    );
                }
                "namespace" => {
                    let ok = !value.is_empty()
                        && value
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
                    if !ok {
                        return Err(invalid(
                            "namespace may hold only letters, digits, '.', '_' and '-'",
                        ));
                    }
                    config.namespace = Some(value.to_string());
                }
                "config" => config
                    .settings
                    .extend(read_properties(Path::new(value), invalid)?),
                k if k.contains('.') => config.settings.push((k.to_string(), value.to_string())),
                _ => return Err(invalid(&format!("unknown parameter `{key}`"))),
            }
        }
        Ok(config)
    }

    /// The librdkafka settings for one kind of client: ours first, then the passed-through ones
    /// (which win).
    pub fn client_settings(&self, kind: ClientKind) -> Vec<(String, String)> {
        let mut out = vec![("bootstrap.servers".to_string(), self.bootstrap.clone())];
        for (key, value) in &self.settings {
            let (target, key) = match key.split_once('.') {
                Some(("producer", k)) => (Some(ClientKind::Producer), k),
                Some(("consumer", k)) => (Some(ClientKind::Consumer), k),
                _ => (None, key.as_str()),
            };
            if target.is_none_or(|t| t == kind) {
                out.push((key.to_string(), value.clone()));
            }
        }
        out
    }

    /// The name a topic or group has on the cluster.
    pub fn qualify(&self, name: &str) -> String {
        match &self.namespace {
            Some(ns) => format!("{ns}.{name}"),
            None => name.to_string(),
        }
    }

    /// The name a cluster topic has for us, or `None` when it is outside our namespace.
    pub fn unqualify<'a>(&self, name: &'a str) -> Option<&'a str> {
        match &self.namespace {
            Some(ns) => name.strip_prefix(ns.as_str())?.strip_prefix('.'),
            None => Some(name),
        }
    }

    /// The URL again, with the values of secret settings replaced by `***`.
    pub fn describe(&self) -> String {
        let mut params = Vec::new();
        if let Some(ns) = &self.namespace {
            params.push(format!("namespace={ns}"));
        }
        for (k, v) in &self.settings {
            let v = if is_secret(k) { "***" } else { v.as_str() };
            params.push(format!("{k}={v}"));
        }
        if params.is_empty() {
            format!("kafka://{}", self.bootstrap)
        } else {
            format!("kafka://{}?{}", self.bootstrap, params.join("&"))
        }
    }
}

impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

/// Read `key=value` lines (`#` comments, blank lines allowed), as in a Java properties file.
fn read_properties(
    path: &Path,
    invalid: &dyn Fn(&str) -> LogError,
) -> Result<Vec<(String, String)>, LogError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid(&format!("cannot read config file {}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| {
            invalid(&format!(
                "{} line {}: expected key=value",
                path.display(),
                n + 1
            ))
        })?;
        out.push((k.trim().to_string(), v.trim().to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(rest: &str) -> Result<KafkaConfig, LogError> {
        KafkaConfig::parse(rest, &|reason| LogError::InvalidUrl {
            url: rest.to_string(),
            reason: reason.to_string(),
        })
    }

    #[test]
    fn parses_hosts_parameters_and_pass_through_settings() {
        let c = parse("b1:9092,b2:9093?partitions=6&replication=3&namespace=t1&security.protocol=SASL_SSL&producer.linger.ms=20").unwrap();
        assert_eq!(c.bootstrap, "b1:9092,b2:9093");
        assert_eq!(c.partitions, 6);
        assert_eq!(c.replication, Some(3));
        assert_eq!(c.qualify("returnOrders"), "t1.returnOrders");
        assert_eq!(c.unqualify("t1.returnOrders"), Some("returnOrders"));
        assert_eq!(c.unqualify("t2.returnOrders"), None);
        let producer = c.client_settings(ClientKind::Producer);
        let consumer = c.client_settings(ClientKind::Consumer);
        assert!(producer.contains(&("linger.ms".into(), "20".into())));
        assert!(!consumer.iter().any(|(k, _)| k == "linger.ms"));
        assert!(consumer.contains(&("security.protocol".into(), "SASL_SSL".into())));
    }

    #[test]
    fn secrets_never_appear_in_descriptions() {
        let c = parse("b:9092?sasl.password=hunter2&ssl.key.password=pw&sasl.username=me").unwrap();
        let shown = format!("{} {:?}", c.describe(), c);
        assert!(
            !shown.contains("hunter2") && !shown.contains("=pw"),
            "{shown}"
        );
        assert!(shown.contains("sasl.username=me"), "{shown}");
    }

    #[test]
    fn reads_settings_from_a_properties_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("client.properties");
        std::fs::write(
            &path,
            "# secrets\nsasl.password = s3cret\n\nsasl.mechanism=PLAIN\n",
        )
        .unwrap();
        let c = parse(&format!("b:9092?config={}", path.display())).unwrap();
        assert!(c
            .settings
            .contains(&("sasl.password".into(), "s3cret".into())));
        assert!(!c.describe().contains("s3cret"));
    }

    #[test]
    fn rejects_bad_urls_with_a_reason() {
        for (rest, needle) in [
            ("", "missing HOST:PORT"),
            ("host", "no valid :PORT"),
            ("h:1?partitions=0", "partitions"),
            ("h:1?namespace=a/b", "namespace"),
            ("h:1?color=red", "unknown parameter"),
            (
                "h:1?config=/nonexistent/x.properties",
                "cannot read config file",
            ),
        ] {
            let err = parse(rest).unwrap_err().to_string();
            assert!(err.contains(needle), "{rest}: {err}");
        }
    }
}
