//! A real browser for tests: Debian's `chromedriver` (package `chromium-driver`) started on
//! 127.0.0.1 at a free port, driving a headless `chromium` that accepts the test's self-signed
//! HTTPS certificate, over WebDriver's JSON protocol (W3C WebDriver, HTTP/1.1 on loopback).
//!
//! One [`Browser`] is one chromedriver process and one browser session; dropping it ends the
//! session and kills the process. A missing binary is an error naming the packages to install
//! (`cargo xtask test` installs them), never a skip.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The chromedriver binary (Debian's `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The browser binary (Debian's `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How long a WebDriver call, and a wait for an element, may take.
const TIMEOUT: Duration = Duration::from_secs(30);
/// WebDriver's key for an element reference.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// What went wrong driving the browser.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn err(text: impl Into<String>) -> Error {
    Error(text.into())
}

/// A headless chromium under chromedriver, with one WebDriver session.
#[derive(Debug)]
pub struct Browser {
    child: Child,
    port: u16,
    session: String,
    profile: PathBuf,
    screenshots: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a headless chromium (window 1280x900, or `width`x`height`),
    /// whose screenshots go to `screenshots` (created).
    ///
    /// # Errors
    /// A missing binary (naming the packages), a chromedriver that does not answer, or a
    /// session that cannot be made.
    pub fn start(screenshots: &Path, width: u32, height: u32) -> Result<Browser, Error> {
        for (binary, package) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
            if !Path::new(binary).exists() {
                return Err(err(format!(
                    "{binary} is missing: install Debian's chromium and chromium-driver \
                     (apt-get install chromium chromium-driver; `cargo xtask test` does) \
                     for the browser tests ({package})"
                )));
            }
        }
        std::fs::create_dir_all(screenshots)
            .map_err(|e| err(format!("creating {}: {e}", screenshots.display())))?;
        let port = free_port()?;
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| err(format!("starting {CHROMEDRIVER}: {e}")))?;
        let profile =
            std::env::temp_dir().join(format!("capf-browser-{}-{port}", std::process::id()));
        let mut browser = Browser {
            child,
            port,
            session: String::new(),
            profile,
            screenshots: screenshots.to_owned(),
        };
        browser.wait_ready()?;
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "acceptInsecureCerts": true,
                    "goog:chromeOptions": {
                        "binary": CHROMIUM,
                        "args": [
                            "--headless=new",
                            "--no-sandbox",
                            "--disable-gpu",
                            "--disable-dev-shm-usage",
                            "--no-first-run",
                            format!("--window-size={width},{height}"),
                            format!("--user-data-dir={}", browser.profile.display()),
                        ],
                    },
                },
            },
        });
        let made = browser.call("POST", "/session", Some(&caps))?;
        browser.session = made["sessionId"]
            .as_str()
            .ok_or_else(|| err(format!("no session id in {made}")))?
            .to_owned();
        Ok(browser)
    }

    fn wait_ready(&self) -> Result<(), Error> {
        let start = Instant::now();
        loop {
            if let Ok(status) = self.call("GET", "/status", None)
                && status["ready"] == Value::Bool(true)
            {
                return Ok(());
            }
            if start.elapsed() > TIMEOUT {
                return Err(err("chromedriver did not become ready"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// One WebDriver call: the answer's `value`, or its error.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Error> {
        let body = body.map(Value::to_string).unwrap_or_default();
        let mut stream = TcpStream::connect(SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)))
            .map_err(|e| err(format!("connecting to chromedriver: {e}")))?;
        stream
            .set_read_timeout(Some(TIMEOUT * 2))
            .map_err(|e| err(e.to_string()))?;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.port,
            body.len()
        );
        stream
            .write_all(request.as_bytes())
            .map_err(|e| err(format!("writing to chromedriver: {e}")))?;
        // chromedriver keeps the connection open: read the head, then the body's length.
        let mut answer = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        let read_more = |stream: &mut TcpStream, answer: &mut Vec<u8>, buf: &mut [u8]| {
            let n = stream
                .read(buf)
                .map_err(|e| err(format!("reading from chromedriver: {e}")))?;
            if n == 0 {
                return Err(err("chromedriver closed the connection early"));
            }
            answer.extend_from_slice(&buf[..n]);
            Ok(())
        };
        let split = loop {
            if let Some(at) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at;
            }
            read_more(&mut stream, &mut answer, &mut buf)?;
        };
        let head = String::from_utf8_lossy(&answer[..split]).to_ascii_lowercase();
        let length = head.lines().find_map(|l| {
            l.strip_prefix("content-length:")
                .and_then(|v| v.trim().parse::<usize>().ok())
        });
        let payload = if let Some(length) = length {
            while answer.len() < split + 4 + length {
                read_more(&mut stream, &mut answer, &mut buf)?;
            }
            answer[split + 4..split + 4 + length].to_vec()
        } else if head.contains("transfer-encoding: chunked") {
            while !answer.ends_with(b"0\r\n\r\n") {
                read_more(&mut stream, &mut answer, &mut buf)?;
            }
            dechunk(&answer[split + 4..])?
        } else {
            let _ = stream.read_to_end(&mut answer);
            answer[split + 4..].to_vec()
        };
        let parsed: Value = serde_json::from_slice(&payload).map_err(|e| {
            err(format!(
                "chromedriver's answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&payload)
            ))
        })?;
        let value = parsed.get("value").cloned().unwrap_or(Value::Null);
        if let Some(error) = value.get("error").and_then(Value::as_str) {
            let message = value["message"].as_str().unwrap_or("");
            return Err(err(format!("{method} {path}: {error}: {message}")));
        }
        Ok(value)
    }

    fn session_call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, Error> {
        self.call(method, &format!("/session/{}{path}", self.session), body)
    }

    /// Opens `url`.
    ///
    /// # Errors
    /// A WebDriver error.
    pub fn goto(&self, url: &str) -> Result<(), Error> {
        self.session_call("POST", "/url", Some(&json!({ "url": url })))
            .map(drop)
    }

    /// The current page's address.
    ///
    /// # Errors
    /// A WebDriver error.
    pub fn url(&self) -> Result<String, Error> {
        Ok(self
            .session_call("GET", "/url", None)?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The element matching the CSS selector, waiting for it up to the timeout.
    ///
    /// # Errors
    /// No such element within the timeout, or a WebDriver error.
    pub fn find(&self, css: &str) -> Result<String, Error> {
        let start = Instant::now();
        loop {
            match self.session_call(
                "POST",
                "/element",
                Some(&json!({ "using": "css selector", "value": css })),
            ) {
                Ok(found) => {
                    return found[ELEMENT]
                        .as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| err(format!("no element reference in {found}")));
                }
                Err(e) if start.elapsed() > TIMEOUT => {
                    return Err(err(format!("{css}: {e}")));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Clicks the element matching `css`.
    ///
    /// # Errors
    /// As [`Browser::find`].
    pub fn click(&self, css: &str) -> Result<(), Error> {
        let id = self.find(css)?;
        self.session_call("POST", &format!("/element/{id}/click"), Some(&json!({})))
            .map(drop)
    }

    /// Clears the input matching `css` and types `text` into it (for a file input: the file's
    /// path, which chooses it).
    ///
    /// # Errors
    /// As [`Browser::find`].
    pub fn type_into(&self, css: &str, text: &str) -> Result<(), Error> {
        let id = self.find(css)?;
        let _ = self.session_call("POST", &format!("/element/{id}/clear"), Some(&json!({})));
        self.session_call(
            "POST",
            &format!("/element/{id}/value"),
            Some(&json!({ "text": text })),
        )
        .map(drop)
    }

    /// Chooses the option `value` of the select matching `css`.
    ///
    /// # Errors
    /// As [`Browser::find`].
    pub fn choose(&self, css: &str, value: &str) -> Result<(), Error> {
        self.click(&format!("{css} option[value=\"{value}\"]"))
    }

    /// The visible text of the element matching `css`.
    ///
    /// # Errors
    /// As [`Browser::find`].
    pub fn text(&self, css: &str) -> Result<String, Error> {
        let id = self.find(css)?;
        Ok(self
            .session_call("GET", &format!("/element/{id}/text"), None)?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The current value of the input matching `css`.
    ///
    /// # Errors
    /// As [`Browser::find`].
    pub fn value(&self, css: &str) -> Result<String, Error> {
        let id = self.find(css)?;
        Ok(self
            .session_call("GET", &format!("/element/{id}/property/value"), None)?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// Runs a script in the page and answers its result.
    ///
    /// # Errors
    /// A WebDriver error (a script error among them).
    pub fn execute(&self, script: &str) -> Result<Value, Error> {
        self.session_call(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
    }

    /// Waits until the element matching `css` has text containing `needle`; answers the text.
    ///
    /// # Errors
    /// The text never came within the timeout (the last text is in the message).
    pub fn wait_text(&self, css: &str, needle: &str) -> Result<String, Error> {
        let start = Instant::now();
        loop {
            let text = self.text(css).unwrap_or_default();
            if text.contains(needle) {
                return Ok(text);
            }
            if start.elapsed() > TIMEOUT {
                return Err(err(format!(
                    "{css} never showed {needle:?}; it shows {text:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Resizes the window (a phone's screen, a laptop's).
    ///
    /// # Errors
    /// A WebDriver error.
    pub fn resize(&self, width: u32, height: u32) -> Result<(), Error> {
        self.session_call(
            "POST",
            "/window/rect",
            Some(&json!({ "width": width, "height": height })),
        )
        .map(drop)
    }

    /// Saves a PNG screenshot of the page as `<screenshots>/<name>.png`; answers its path.
    ///
    /// # Errors
    /// A WebDriver error, or the file cannot be written.
    pub fn screenshot(&self, name: &str) -> Result<PathBuf, Error> {
        let data = self.session_call("GET", "/screenshot", None)?;
        let png = decode_base64(data.as_str().unwrap_or_default())?;
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, png).map_err(|e| err(format!("writing {}: {e}", path.display())))?;
        Ok(path)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A port on 127.0.0.1 nobody listens on now.
fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .map_err(|e| err(format!("finding a free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| err(e.to_string()))
}

/// An HTTP/1.1 chunked body, put back together.
fn dechunk(mut data: &[u8]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| err("a malformed chunk"))?;
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|_| err("a malformed chunk size"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        let chunk = data.get(..size).ok_or_else(|| err("a short chunk"))?;
        out.extend_from_slice(chunk);
        data = data.get(size + 2..).ok_or_else(|| err("a short chunk"))?;
    }
}

/// Standard base64 (WebDriver's screenshots), padding and whitespace allowed.
fn decode_base64(text: &str) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut buffer = 0u32;
    let mut bits = 0;
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' | b'\n' | b'\r' | b' ' => continue,
            _ => return Err(err("a screenshot that is not base64")),
        };
        buffer = (buffer << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((buffer >> bits) & 0xff).unwrap_or(0));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn decodes_base64_and_chunks() {
        assert_eq!(decode_base64("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
    }
}
