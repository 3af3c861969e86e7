//! Every source type of this crate under its type name (`type:` in a
//! pipeline file), in the order the documentation lists them.

use switchyard_engine::source::SourceRegistry;

/// The registry of the built-in sources.
pub fn builtin() -> SourceRegistry {
    let mut r = SourceRegistry::new();
    r.register::<crate::http::source::HttpSourceConfig>(
        "http",
        "the HTTP ingest API (/v1/events, /v1/logs)",
    );
    r.register::<crate::file_tail::source::FileSourceConfig>(
        "file",
        "follow files by glob, one record per line (or multiline event)",
    );
    r.register::<crate::net::source::TcpConfig>("tcp", "log lines over TCP");
    r.register::<crate::net::source::UdpConfig>("udp", "log lines over UDP");
    r.register::<crate::net::source::SyslogTcpConfig>(
        "syslog_tcp",
        "syslog (RFC 5424/3164, newline or octet-counted) over TCP",
    );
    r.register::<crate::net::source::SyslogUdpConfig>(
        "syslog_udp",
        "syslog (RFC 5424/3164) over UDP",
    );
    r.register::<crate::docker::source::DockerSourceConfig>(
        "docker",
        "container logs through the Docker Engine API",
    );
    r.register::<crate::demo::source::DemoSourceConfig>(
        "demo",
        "made-up log records or LLM exchanges at a chosen rate",
    );
    #[cfg(feature = "redis")]
    {
        r.register::<crate::redis_streams::source::RedisStreamsConfig>(
            "redis_streams",
            "a Redis Streams consumer group, acknowledged after delivery",
        );
        r.register::<crate::redis_list::source::RedisListConfig>(
            "redis_list",
            "the Redis LIST log, with a per-plugin offset",
        );
    }
    r
}

#[cfg(all(test, feature = "redis"))]
mod tests {
    use serde_json::json;

    #[test]
    fn all_ten_types_are_registered() {
        let names: Vec<_> = super::builtin().names().collect();
        assert_eq!(
            names,
            [
                "http",
                "file",
                "tcp",
                "udp",
                "syslog_tcp",
                "syslog_udp",
                "docker",
                "demo",
                "redis_streams",
                "redis_list"
            ]
        );
    }

    /// Each type refuses a key it does not know, naming the key's path.
    #[test]
    fn every_type_refuses_an_unknown_key_by_its_path() {
        let r = super::builtin();
        let minimal = |name: &str| match name {
            "file" => json!({"include": ["x"]}),
            "tcp" | "udp" | "syslog_tcp" | "syslog_udp" => json!({"address": "127.0.0.1:1"}),
            "demo" => json!({"kind": "logs"}),
            _ => json!({}),
        };
        for name in r.names() {
            let mut ok = minimal(name);
            assert!(r.build(name, ok.clone()).is_ok(), "{name}");
            ok["colour"] = json!("red");
            let err = r.build(name, ok).err().unwrap();
            assert_eq!(err.key(), Some("colour"), "{name}: {err}");
            assert!(
                err.message().starts_with("unknown key; expected"),
                "{name}: {err}"
            );
        }
        let nested = json!({"include": ["x"], "multiline": {"start": "^x", "stop": "y"}});
        let err = r.build("file", nested).err().unwrap();
        assert_eq!(err.key(), Some("multiline.stop"));
    }
}
