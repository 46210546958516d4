use super::*;

fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn refused(pairs: &[(&str, &str)]) -> PropertyError {
    parse(&props(pairs)).expect_err("refused")
}

#[test]
fn no_security_properties_is_plaintext() {
    let parsed = parse(&props(&[("linger.ms", "5")])).expect("parse");
    assert_eq!(parsed, KafkaSecurity::default());
}

#[test]
fn ssl_with_a_ca_file_and_sasl_ssl_with_scram() {
    let parsed = parse(&props(&[("security.protocol", "ssl"), ("ssl.ca.location", "/etc/ca.pem")])).expect("parse");
    assert_eq!(parsed.protocol, SecurityProtocol::Ssl);
    assert_eq!(parsed.tls, Some(TlsSettings { ca: CaSource::File("/etc/ca.pem".into()), verify_hostname: true }));
    assert_eq!(parsed.sasl, None);

    let parsed = parse(&props(&[
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanisms", "SCRAM-SHA-512"),
        ("sasl.username", "alice"),
        ("sasl.password", "secret"),
        ("ssl.endpoint.identification.algorithm", "none"),
    ]))
    .expect("parse");
    assert_eq!(parsed.tls, Some(TlsSettings { ca: CaSource::System, verify_hostname: false }));
    let sasl = parsed.sasl.expect("sasl");
    assert_eq!(
        (sasl.mechanism, sasl.username.as_str(), sasl.password.as_str()),
        (SaslMechanism::ScramSha512, "alice", "secret")
    );
    assert!(!format!("{sasl:?}").contains("secret"), "the password never reaches a log");
}

#[test]
fn sasl_plaintext_has_no_tls() {
    let parsed = parse(&props(&[
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.username", "u"),
        ("sasl.password", "p"),
        // TLS settings are ignored without TLS, as librdkafka does.
        ("ssl.ca.location", "/nowhere"),
    ]))
    .expect("parse");
    assert_eq!(parsed.tls, None);
    assert_eq!(parsed.sasl.map(|s| s.mechanism), Some(SaslMechanism::Plain));
}

/// Properties given, the property the error must name, and text the error must contain.
type BadCase<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);

#[test]
fn bad_values_name_their_property() {
    let cases: &[BadCase] = &[
        (&[("security.protocol", "TLS")], "security.protocol", "\"TLS\" is not one of"),
        (
            &[("security.protocol", "SASL_SSL"), ("sasl.username", "u"), ("sasl.password", "p")],
            "sasl.mechanism",
            "GSSAPI",
        ),
        (
            &[("security.protocol", "SASL_SSL"), ("sasl.mechanism", "GSSAPI"), ("sasl.username", "u")],
            "sasl.mechanism",
            "\"GSSAPI\" is not one of",
        ),
        (
            &[("security.protocol", "SASL_SSL"), ("sasl.mechanisms", "OAUTHBEARER")],
            "sasl.mechanisms",
            "\"OAUTHBEARER\"",
        ),
        (
            &[("security.protocol", "SASL_SSL"), ("sasl.mechanism", "PLAIN"), ("sasl.password", "p")],
            "sasl.username",
            "required",
        ),
        (
            &[("security.protocol", "SASL_SSL"), ("sasl.mechanism", "PLAIN"), ("sasl.username", "u")],
            "sasl.password",
            "required",
        ),
        (&[("security.protocol", "SSL"), ("ssl.ca.location", "probe")], "ssl.ca.location", "probe"),
        (&[("security.protocol", "SSL"), ("ssl.ca.location", "/a"), ("ssl.ca.pem", "x")], "ssl.ca.pem", "not both"),
        (
            &[("security.protocol", "SSL"), ("ssl.endpoint.identification.algorithm", "dns")],
            "ssl.endpoint.identification.algorithm",
            "\"dns\"",
        ),
        (
            &[("security.protocol", "SSL"), ("ssl.certificate.location", "/c.pem")],
            "ssl.certificate.location",
            "not supported",
        ),
        (&[("enable.ssl.certificate.verification", "false")], "enable.ssl.certificate.verification", "not supported"),
        (&[("sasl.kerberos.keytab", "/k")], "sasl.kerberos.keytab", "not supported"),
    ];
    for (pairs, property, message) in cases {
        let e = refused(pairs);
        assert_eq!(&e.property, property, "{pairs:?}: {e}");
        assert!(e.message.contains(message), "{pairs:?}: {e}");
        assert!(e.to_string().starts_with(&format!("properties[\"{property}\"]: ")), "{e}");
    }
}

#[test]
fn env_references_resolve_or_name_the_property() {
    let lookup = |name: &str| (name == "KAFKA_PASSWORD").then(|| "s3cret".to_owned());
    let resolved = resolve_env(&props(&[("sasl.password", "${env:KAFKA_PASSWORD}"), ("linger.ms", "5")]), lookup)
        .expect("resolve");
    assert_eq!(resolved, props(&[("sasl.password", "s3cret"), ("linger.ms", "5")]));

    let e = resolve_env(&props(&[("sasl.password", "${env:MISSING}")]), lookup).expect_err("unset");
    assert_eq!(e.property, "sasl.password");
    assert!(e.message.contains("MISSING") && e.message.contains("not set"), "{e}");

    let e = resolve_env(&props(&[("sasl.username", "${env:USER")]), lookup).expect_err("unclosed");
    assert_eq!(e.property, "sasl.username");
    let e = resolve_env(&props(&[("sasl.username", "${env:1X}")]), lookup).expect_err("bad name");
    assert!(e.message.contains("not an environment variable name"), "{e}");
    // Only a whole value is a reference.
    assert_eq!(env_reference("pre${env:X}"), Ok(None));
}
