//! Receivers that misbehave at the TCP level, written by hand on a raw
//! tokio TcpListener (warp cannot trickle, stall or send invalid bytes):
//! each counts the connections it accepted, so a test can assert that a
//! blocked target got none.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Clone)]
pub enum Hostile {
    /// Writes these bytes as the whole response, then closes.
    Raw(Vec<u8>),
    /// 200 with a huge Content-Length, then one byte every `every`, forever.
    Trickle { every: Duration },
    /// 200 chunked, 64 KiB chunks as fast as the peer reads, never ending.
    Endless,
    /// Reads the request and never answers (keeps the socket open).
    Silent,
}

#[derive(Clone)]
pub struct HostileReceiver {
    pub addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    /// Bytes of the endless/trickled body written so far (all connections).
    pub written: Arc<AtomicUsize>,
    /// Writers of an endless/trickled body that stopped because the peer
    /// closed the connection (a write failed).
    stopped: tokio::sync::watch::Receiver<usize>,
}

impl HostileReceiver {
    pub async fn start(behaviour: Hostile) -> HostileReceiver {
        Self::start_on("127.0.0.1:0", behaviour).await
    }

    pub async fn start_on(bind: &str, behaviour: Hostile) -> HostileReceiver {
        let listener = TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let written = Arc::new(AtomicUsize::new(0));
        let (c, w) = (connections.clone(), written.clone());
        let (stopped_tx, stopped) = tokio::sync::watch::channel(0);
        let stopped_tx = Arc::new(stopped_tx);
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let (behaviour, w, stopped_tx) = (behaviour.clone(), w.clone(), stopped_tx.clone());
                tokio::spawn(async move {
                    if serve(sock, behaviour, w).await == Served::PeerClosed {
                        stopped_tx.send_modify(|n| *n += 1);
                    }
                });
            }
        });
        HostileReceiver {
            addr,
            connections,
            written,
            stopped,
        }
    }

    /// Waits until `n` body writers have stopped because the peer closed
    /// the connection; false after `timeout`.
    pub async fn writers_stopped(&self, n: usize, timeout: Duration) -> bool {
        let mut rx = self.stopped.clone();
        tokio::time::timeout(timeout, rx.wait_for(|count| *count >= n))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }
}

/// Reads until the end of the request head plus a Content-Length body.
async fn read_request(sock: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = sock.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(buf);
        }
    }
}

/// How one connection ended.
#[derive(Debug, PartialEq, Eq)]
enum Served {
    /// The behaviour ran its course (or the request never came).
    Done,
    /// A body write failed: the peer closed the connection.
    PeerClosed,
}

async fn serve(mut sock: TcpStream, behaviour: Hostile, written: Arc<AtomicUsize>) -> Served {
    if read_request(&mut sock).await.is_none() {
        return Served::Done;
    }
    match behaviour {
        Hostile::Raw(bytes) => {
            let _ = sock.write_all(&bytes).await;
            let _ = sock.shutdown().await;
        }
        Hostile::Trickle { every } => {
            let head =
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 1000000\r\n\r\n";
            if sock.write_all(head).await.is_err() {
                return Served::Done;
            }
            loop {
                if sock.write_all(b"x").await.is_err() {
                    return Served::PeerClosed;
                }
                written.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(every).await;
            }
        }
        Hostile::Endless => {
            let head = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n";
            if sock.write_all(head).await.is_err() {
                return Served::Done;
            }
            let mut chunk = b"10000\r\n".to_vec();
            chunk.extend(std::iter::repeat_n(b'y', 0x10000));
            chunk.extend_from_slice(b"\r\n");
            loop {
                if sock.write_all(&chunk).await.is_err() {
                    return Served::PeerClosed;
                }
                written.fetch_add(0x10000, Ordering::SeqCst);
            }
        }
        Hostile::Silent => {
            // Hold the socket without answering until the peer gives up.
            let mut sink = [0u8; 1024];
            while let Ok(n) = sock.read(&mut sink).await {
                if n == 0 {
                    return Served::Done;
                }
            }
        }
    }
    Served::Done
}
