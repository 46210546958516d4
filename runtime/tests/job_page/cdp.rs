//! Just enough of the Chrome DevTools protocol to drive a headless chromium from a test: launch
//! it on a URL, attach to the page over its websocket, evaluate JavaScript, take a screenshot.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// The chromium to run: `$SLUICE_CHROMIUM`, else `chromium` or `chromium-browser` on `PATH`.
/// Panics naming the missing binary and how to install it: the page test never passes without
/// a browser.
pub fn chromium() -> PathBuf {
    const HOW: &str = "install it with `apt-get install -y chromium` or `bash scripts/services/chromium.sh start` \
                       (what `make test` does), or point SLUICE_CHROMIUM at a chromium binary";
    if let Some(p) = std::env::var_os("SLUICE_CHROMIUM").filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "SLUICE_CHROMIUM={} is not a file: {HOW}", p.display());
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for name in ["chromium", "chromium-browser"] {
        if let Some(p) = std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file()) {
            return p;
        }
    }
    panic!("the job page test needs a headless browser, and no `chromium` (nor `chromium-browser`) is on PATH: {HOW}");
}

/// A headless chromium with its own profile directory; killed when dropped.
pub struct Browser {
    child: Child,
    profile: tempfile::TempDir,
    port: u16,
}

impl Browser {
    /// Starts `bin` headless on `url` with DevTools on a free loopback port.
    pub fn launch(bin: &Path, url: &str) -> Browser {
        let profile = tempfile::tempdir().expect("profile dir");
        let log = std::fs::File::create(profile.path().join("chromium.log")).expect("log file");
        let child = Command::new(bin)
            .args(["--headless", "--disable-gpu", "--no-sandbox", "--no-first-run", "--disable-extensions"])
            .args(["--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--window-size=1280,900"])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(url)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut browser = Browser { child, profile, port: 0 };
        // Chromium writes the port it chose to DevToolsActivePort in its profile.
        let started = Instant::now();
        let active = browser.profile.path().join("DevToolsActivePort");
        browser.port = loop {
            if let Some(port) = std::fs::read_to_string(&active).ok().and_then(|s| s.lines().next()?.parse().ok()) {
                break port;
            }
            if let Ok(Some(status)) = browser.child.try_wait() {
                panic!("chromium exited ({status}) before DevTools listened: {}", browser.log());
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no DevTools port after 60 s: {}", browser.log());
            std::thread::sleep(Duration::from_millis(50));
        };
        browser
    }

    /// What chromium wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.profile.path().join("chromium.log")).unwrap_or_default()
    }

    /// Attaches to the tab showing a URL that starts with `url`.
    pub fn page(&self, url: &str) -> Page {
        let started = Instant::now();
        let ws_url = loop {
            let list: Vec<Value> =
                self.get("/json/list").and_then(|b| serde_json::from_str(&b).ok()).unwrap_or_default();
            let tab =
                list.iter().find(|t| t["type"] == "page" && t["url"].as_str().is_some_and(|u| u.starts_with(url)));
            if let Some(ws) = tab.and_then(|t| t["webSocketDebuggerUrl"].as_str()) {
                break ws.to_string();
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no tab on {url}: {list:?}; {}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        };
        let stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to DevTools");
        stream.set_read_timeout(Some(Duration::from_secs(60))).expect("read timeout");
        let (ws, _) = tungstenite::client(ws_url.as_str(), stream).expect("DevTools websocket handshake");
        Page { ws, next_id: 0 }
    }
}

impl Browser {
    /// A GET on DevTools' HTTP endpoint. It keeps connections open whatever the request says,
    /// so the body is read by its Content-Length.
    fn get(&self, path: &str) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n", self.port).ok()?;
        let mut reader = BufReader::new(s);
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).ok()?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().ok()?;
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        String::from_utf8(body).ok()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One tab, driven over the DevTools protocol.
pub struct Page {
    ws: WebSocket<TcpStream>,
    next_id: u64,
}

impl Page {
    /// Calls `method` and returns its `result` (events that arrive meanwhile are skipped).
    pub fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws.send(Message::text(request)).unwrap_or_else(|e| panic!("sending {method}: {e}"));
        loop {
            let msg = self.ws.read().unwrap_or_else(|e| panic!("waiting for the answer to {method}: {e}"));
            let Message::Text(text) = msg else { continue };
            let answer: Value = serde_json::from_str(text.as_str()).expect("DevTools sends JSON");
            if answer["id"] != id {
                continue;
            }
            assert!(answer.get("error").is_none(), "{method} failed: {answer}");
            return answer["result"].clone();
        }
    }

    /// Evaluates `expr` in the page (awaiting a promise) and returns its value.
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call("Runtime.evaluate", json!({"expression": expr, "returnByValue": true, "awaitPromise": true}));
        assert!(r.get("exceptionDetails").is_none(), "{expr} threw: {}", r["exceptionDetails"]);
        r["result"]["value"].clone()
    }

    /// Evaluates `expr` every 200 ms until `done` accepts its value (within `limit`); returns it.
    pub fn wait_for(&mut self, expr: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let v = self.eval(expr);
            if done(&v) {
                return v;
            }
            assert!(started.elapsed() < limit, "after {limit:?} the page still shows {v} for {expr}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Saves a PNG of the whole page at `path`.
    pub fn screenshot(&mut self, path: &Path) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png", "captureBeyondViewport": true}));
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap_or_default())
            .expect("base64 PNG");
        assert!(png.starts_with(b"\x89PNG"), "not a PNG ({} bytes)", png.len());
        std::fs::write(path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}
