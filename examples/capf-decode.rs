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

use anyhow::Context;
use capf_admin::wire::{CaptureDecoder, FrameView, VectorVerdict, parse_hex};
use capf_wire::{Frame, Strictness};
use clap::Parser;
use serde_json::Value as Json;

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

/// Decodes a whole stream; prints each message, then the first error. Returns whether it was clean.
fn decode_stream(args: &Args) -> anyhow::Result<bool> {
    let raw = read_input(args.input.as_deref())?;
    let data = if args.hex { parse_hex(&raw)? } else { raw };
    let strictness = if args.lenient {
        Strictness::Lenient
    } else {
        Strictness::Strict
    };
    for message in CaptureDecoder::new(&data, strictness) {
        match message {
            Ok(view) => println!("{}", serde_json::to_value(&view)?),
            Err(err) => {
                eprintln!("capf-decode: {err}");
                return Ok(false);
            }
        }
    }
    Ok(true)
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
        let verdict = VectorVerdict::check(&data, v["error_layer"].as_str());
        match &verdict {
            VectorVerdict::Valid { .. } => valid += 1,
            VectorVerdict::Rejected { .. } => rejected += 1,
            VectorVerdict::LeftAbove { .. } => above += 1,
            _ => failed += 1,
        }
        if verdict.passed() {
            println!("ok   {name}: {verdict}");
        } else {
            println!("FAIL {name}: {verdict}");
        }
        if let (Some(s), true) = (v["session"].as_str(), verdict.decoded()) {
            if s != session {
                session = s.to_string();
                println!("--- recorded session {session}");
            }
            let frame = Frame::parse(&data, Strictness::Strict)?;
            let arrow = v["direction"].as_str().unwrap_or("?");
            println!(
                "{arrow} {}",
                serde_json::to_value(FrameView::new(0, &frame))?
            );
        }
    }
    println!(
        "{} vectors: {valid} valid decoded and re-encoded byte-exact, {rejected} malformed rejected at the expected layer, {above} left to the session layer, {failed} failed",
        vectors.len()
    );
    Ok(failed == 0)
}
