//! `capf-decode`: prints captured CAPF traffic as JSON, one object per message.
//!
//! ```text
//! capf-decode [--hex] [--lenient] [FILE|-]   decode a plaintext CAPF byte stream (raw or hex)
//! capf-decode --vectors FILE                 check every vector of a vectors file, print the sessions
//! ```
//!
//! On malformed input it prints what it decoded, then one error line naming the byte offset and
//! the rule broken, and exits 1.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};
use base64::Engine;
use capf_wire::{Deframer, Frame, Message, Strictness, Value};
use clap::Parser;
use der::Decode;
use der::referenced::OwnedToRef;
use serde_json::{Map, Value as Json, json};

#[derive(Parser)]
#[command(name = "capf-decode", version, about = "Print CAPF messages as JSON")]
struct Args {
    /// The input is hex text (whitespace and colons ignored) rather than raw bytes.
    #[arg(long)]
    hex: bool,
    /// Accept the quirks of real peers (unknown commands and tags, off certificate headers).
    #[arg(long)]
    lenient: bool,
    /// Check every vector of a vectors file (spec/capf-test-vectors.json format) and print the
    /// recorded sessions.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["hex", "input"])]
    vectors: Option<String>,
    /// The capture to decode; `-` or nothing for standard input.
    input: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.vectors {
        Some(path) => check_vectors(path),
        None => decode_stream(&args),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("capf-decode: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn read_input(input: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let mut data = Vec::new();
    match input {
        None | Some("-") => std::io::stdin()
            .read_to_end(&mut data)
            .context("reading standard input")?,
        Some(path) => {
            data = std::fs::read(path).with_context(|| format!("reading {path}"))?;
            0
        }
    };
    Ok(data)
}

fn parse_hex(text: &[u8]) -> anyhow::Result<Vec<u8>> {
    let digits: Vec<u8> = text
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace() && *b != b':')
        .collect();
    if let Some(pos) = digits.iter().position(|b| !b.is_ascii_hexdigit()) {
        bail!(
            "hex input: {:?} is not a hex digit (digit {pos})",
            char::from(digits[pos])
        );
    }
    if !digits.len().is_multiple_of(2) {
        bail!("hex input: odd number of hex digits ({})", digits.len());
    }
    Ok(hex::decode(&digits)?)
}

/// Decodes a whole stream; prints each message, then the first error. Returns whether it was clean.
fn decode_stream(args: &Args) -> anyhow::Result<bool> {
    let raw = read_input(args.input.as_deref())?;
    let data = if args.hex { parse_hex(&raw)? } else { raw };
    let strictness = if args.lenient {
        Strictness::Lenient
    } else {
        Strictness::Strict
    };
    let mut deframer = Deframer::new(strictness);
    let mut pos = 0;
    while pos < data.len() {
        let start = pos;
        match deframer.push(&data[pos..]) {
            Ok((used, frame)) => {
                pos += used;
                if let Some(frame) = frame {
                    if let Err(err) = Message::from_frame(&frame) {
                        return Ok(report(start, &err));
                    }
                    println!("{}", render_frame(start, &frame));
                }
            }
            Err(err) => return Ok(report(start, &err)),
        }
    }
    if let Err(err) = deframer.finish() {
        let start = data.len() - deframer.buffered();
        return Ok(report(start, &err));
    }
    Ok(true)
}

/// Prints the error line for a message starting at `start`; returns false.
fn report(start: usize, err: &capf_wire::Error) -> bool {
    let at = start + err.offset().unwrap_or(0);
    eprintln!(
        "capf-decode: error at byte {at} (message at byte {start}, {} layer): {err}",
        err.layer().as_str()
    );
    false
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// One-line summary of a DER certificate, if it parses.
fn certificate_summary(der: &[u8]) -> Option<String> {
    let cert = x509_cert::Certificate::from_der(der).ok()?;
    let tbs = cert.tbs_certificate();
    Some(format!(
        "subject={}; issuer={}; serial={}; not_before={}; not_after={}; key={}",
        tbs.subject(),
        tbs.issuer(),
        tbs.serial_number(),
        tbs.validity().not_before,
        tbs.validity().not_after,
        key_summary(tbs.subject_public_key_info().owned_to_ref()),
    ))
}

/// Names the key algorithm (and size or curve) of a SubjectPublicKeyInfo.
fn key_summary(spki: spki::SubjectPublicKeyInfoRef<'_>) -> String {
    const RSA: &str = "1.2.840.113549.1.1.1";
    const EC: &str = "1.2.840.10045.2.1";
    let alg = spki.algorithm.oid.to_string();
    match alg.as_str() {
        RSA => format!(
            "RSA {} bits",
            rsa_bits(spki.subject_public_key.raw_bytes()).unwrap_or(0)
        ),
        EC => {
            let curve = spki
                .algorithm
                .parameters
                .and_then(|p| p.decode_as::<der::asn1::ObjectIdentifier>().ok())
                .map(|oid| match oid.to_string().as_str() {
                    "1.2.840.10045.3.1.7" => "P-256".to_string(),
                    "1.3.132.0.34" => "P-384".to_string(),
                    "1.3.132.0.35" => "P-521".to_string(),
                    other => other.to_string(),
                })
                .unwrap_or_else(|| "unknown curve".into());
            format!("EC {curve}")
        }
        other => other.to_string(),
    }
}

/// The modulus size of a PKCS#1 RSAPublicKey.
fn rsa_bits(der: &[u8]) -> Option<usize> {
    #[derive(der::Sequence)]
    struct RsaPublicKey<'a> {
        modulus: der::asn1::UintRef<'a>,
        _exponent: der::asn1::UintRef<'a>,
    }
    let key = RsaPublicKey::from_der(der).ok()?;
    let m = key.modulus.as_bytes();
    let lead = m.first()?;
    Some(m.len() * 8 - lead.leading_zeros() as usize)
}

fn render_value(el: &capf_wire::RawElement<'_>, strictness: Strictness) -> Map<String, Json> {
    let mut o = Map::new();
    o.insert("tag".into(), json!(el.tag.0));
    o.insert("name".into(), json!(el.tag.name()));
    o.insert("length".into(), json!(el.value.len()));
    let named = |o: &mut Map<String, Json>, v: u8, name: Option<&str>| {
        o.insert("value".into(), json!(v));
        if let Some(n) = name {
            o.insert("value_name".into(), json!(n));
        }
    };
    match Value::decode(el, strictness) {
        Ok(Value::Reason(r)) => named(&mut o, r.0, r.name()),
        Ok(Value::AuthType(v)) => named(&mut o, v.0, v.name()),
        Ok(Value::KeyType(v)) => named(&mut o, v.0, v.name()),
        Ok(Value::Curve(v)) => named(&mut o, v.0, v.name()),
        Ok(Value::CertificateType(v)) => named(&mut o, v.0, v.name()),
        Ok(Value::Version(v)) => named(&mut o, v, None),
        Ok(Value::KeySize(v)) => {
            o.insert("value".into(), json!(v));
        }
        Ok(Value::Text(s)) => {
            o.insert("value".into(), json!(s));
        }
        Ok(Value::Certificate(c)) => {
            o.insert("inner_marker".into(), json!(c.marker()));
            o.insert("inner_length".into(), json!(c.inner_length()));
            o.insert("certificate_type".into(), json!(c.certificate_type().0));
            o.insert(
                "certificate_type_name".into(),
                json!(c.certificate_type().name()),
            );
            o.insert("der_base64".into(), json!(b64(c.der())));
            o.insert("summary".into(), json!(certificate_summary(c.der())));
        }
        Ok(Value::Sha2SignedData(s)) => {
            o.insert("hash_algorithm".into(), json!(s.hash_algorithm().0));
            o.insert(
                "hash_algorithm_name".into(),
                json!(s.hash_algorithm().name()),
            );
            o.insert("signature_length".into(), json!(s.signature().len()));
            o.insert("signature_base64".into(), json!(b64(s.signature())));
        }
        Ok(Value::SudiData(s)) => {
            o.insert(
                "certificate".into(),
                json!({
                    "lead_byte": s.certificate().lead,
                    "der_base64": b64(s.certificate().data),
                    "summary": certificate_summary(s.certificate().data),
                }),
            );
            for (key, block) in [
                ("signed_data", s.signed_data()),
                ("sha2_signed_data", s.sha2_signed_data()),
            ] {
                let hash = capf_wire::HashAlgorithm(block.lead);
                o.insert(
                    key.into(),
                    json!({
                        "hash_algorithm": block.lead,
                        "hash_algorithm_name": hash.name(),
                        "signature_base64": b64(block.data),
                    }),
                );
            }
        }
        Ok(Value::Opaque(bytes)) => {
            o.insert("base64".into(), json!(b64(&bytes)));
            if el.tag == capf_wire::Tag::PUBLIC_KEY {
                let key = spki::SubjectPublicKeyInfoRef::from_der(&bytes)
                    .map(key_summary)
                    .unwrap_or_else(|e| format!("not a SubjectPublicKeyInfo: {e}"));
                o.insert("key".into(), json!(key));
            }
        }
        Ok(other) => {
            o.insert("value".into(), json!(format!("{other:?}")));
        }
        // Already rejected by the message decoder in strict mode; shown rather than hidden.
        Err(e) => {
            o.insert("error".into(), json!(e.to_string()));
        }
    }
    o
}

fn render_frame(offset: usize, frame: &Frame<'_>) -> Json {
    let elements: Vec<Json> = frame
        .elements()
        .map(|el| match el {
            Ok(el) => Json::Object(render_value(&el, frame.strictness)),
            Err(e) => json!({ "error": e.to_string() }),
        })
        .collect();
    json!({
        "offset": offset,
        "protocol_id": capf_wire::PROTOCOL_ID,
        "command": frame.header.command.0,
        "command_name": frame.header.command.name(),
        "session_id": frame.header.session_id,
        "length": frame.header.length,
        "elements": elements,
    })
}

/// Checks every vector against its expectation and prints the recorded sessions.
fn check_vectors(path: &str) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let vectors: Vec<Json> = serde_json::from_str(&text)
        .with_context(|| format!("{path}: not a JSON array of vectors"))?;
    let (mut valid, mut rejected, mut above, mut failed) = (0, 0, 0, 0);
    let mut session = String::new();
    for (i, v) in vectors.iter().enumerate() {
        let name = v["name"].as_str().unwrap_or("(unnamed)");
        let data = match v["hex"].as_str().map(|h| parse_hex(h.as_bytes())) {
            Some(Ok(d)) => d,
            _ => {
                println!("FAIL {name}: vector {i} has no valid hex field");
                failed += 1;
                continue;
            }
        };
        let outcome = Message::decode(&data);
        let verdict = match (v["error_layer"].as_str(), &outcome) {
            (None, Ok(m)) if m.to_bytes() == data => {
                valid += 1;
                Ok(format!("decoded, re-encoded byte-exact ({})", m.command()))
            }
            (None, Ok(_)) => Err("re-encoding differs".to_string()),
            (None, Err(e)) => Err(format!("valid vector rejected: {e}")),
            (Some(layer @ ("session" | "semantic")), Ok(_)) => {
                above += 1;
                Ok(format!("codec accepts; the {layer} layer rejects it"))
            }
            (Some(layer), Err(e)) if e.layer().as_str() == layer => {
                rejected += 1;
                Ok(format!("rejected at the {layer} layer: {e}"))
            }
            (Some(layer), Err(e)) => Err(format!(
                "expected a {layer}-layer error, got {} layer: {e}",
                e.layer().as_str()
            )),
            (Some(layer), Ok(_)) => Err(format!("expected a {layer}-layer error, but it decoded")),
        };
        match verdict {
            Ok(msg) => println!("ok   {name}: {msg}"),
            Err(msg) => {
                failed += 1;
                println!("FAIL {name}: {msg}");
            }
        }
        if let (Some(s), Ok(_)) = (v["session"].as_str(), &outcome) {
            if s != session {
                session = s.to_string();
                println!("--- recorded session {session}");
            }
            let frame = Frame::parse(&data, Strictness::Strict)?;
            let arrow = v["direction"].as_str().unwrap_or("?");
            println!("{arrow} {}", render_frame(0, &frame));
        }
    }
    println!(
        "{} vectors: {valid} valid decoded and re-encoded byte-exact, {rejected} malformed rejected at the expected layer, {above} left to the session layer, {failed} failed",
        vectors.len()
    );
    Ok(failed == 0)
}
