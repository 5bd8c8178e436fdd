//! The hosts of a multi-instance training job, and the collective operations that make them
//! train one model: every host holds a shard of the data (`ShardedByS3Key`), and wherever the
//! model needs a sum over all rows (gradients, losses, column statistics) the hosts exchange
//! their partial results.
//!
//! The topology is a star: the first host (lowest name in `resourceconfig.json`) listens, the
//! others connect to it. In each collective operation the first host receives every other
//! host's part, combines the parts in host order and sends the result back, so every host
//! gets the same bits and the hosts' models never drift apart. With one host every
//! operation is a no-op. For the two to four hosts a tabular job uses, a star moves the same
//! bytes as a ring and needs one round trip instead of 2·(N − 1).
//!
//! Any host that gives up sends its reason to the others ([`Cluster::abort`]), so that a
//! job fails on every host with the first cause instead of waiting for a peer that is gone.

use std::io::{BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use crate::contract::ResourceConfig;

/// The port the first host listens on (SageMaker hosts reach each other by name on any port).
pub const PORT: u16 = 7077;
/// How long hosts wait for each other to start: SageMaker starts a job's instances together,
/// but downloading a shard can take minutes.
const STARTUP: Duration = Duration::from_secs(15 * 60);
/// Longest silence from a peer inside an operation before it is taken for dead.
const SILENCE: Duration = Duration::from_secs(30 * 60);
const GREETING: &[u8; 8] = b"SLUICE\x00\x01";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("host {host} is not in resourceconfig.json's hosts ({hosts})")]
    UnknownHost { host: String, hosts: String },
    #[error("cannot resolve the first host's address {0:?}")]
    Address(String),
    #[error("cannot listen on {address}: {source}")]
    Listen { address: SocketAddr, source: std::io::Error },
    #[error("{missing} of the other hosts did not connect within {seconds} s")]
    Startup { missing: usize, seconds: u64 },
    #[error("cannot reach the first host at {address} within {seconds} s: {source}")]
    Connect { address: SocketAddr, seconds: u64, source: std::io::Error },
    #[error("lost host {host}: {source}")]
    Lost { host: String, source: std::io::Error },
    #[error("host {host} failed: {reason}")]
    PeerFailed { host: String, reason: String },
}

/// This host's place in the job and its connections.
pub struct Cluster {
    hosts: Vec<String>,
    rank: usize,
    links: Vec<Link>,
}

/// A connection to a peer: to every worker on the first host, to the first host on a worker.
struct Link {
    host: String,
    reader: BufReader<TcpStream>,
    writer: BufWriter<TcpStream>,
}

/// What travels in one message: a host's part or the combined result, or why a host gave up.
enum Message {
    Part(Vec<u8>),
    Failed(String),
}

impl Cluster {
    /// A job of one host: every collective operation returns this host's own part.
    pub fn solo() -> Self {
        Self { hosts: vec!["algo-1".into()], rank: 0, links: Vec::new() }
    }

    /// Joins the job's other hosts. `leader` overrides where the first host listens (the
    /// local cloud runs every host on loopback); `job` must be the same on every host, so a
    /// stray connection from another job is turned away.
    pub fn join(resources: &ResourceConfig, leader: Option<SocketAddr>, job: &str) -> Result<Self, ClusterError> {
        let mut hosts = resources.hosts.clone();
        hosts.sort();
        let rank = hosts.iter().position(|h| *h == resources.current_host).ok_or_else(|| {
            ClusterError::UnknownHost { host: resources.current_host.clone(), hosts: hosts.join(", ") }
        })?;
        if hosts.len() == 1 {
            return Ok(Self::solo());
        }
        let address = match leader {
            Some(address) => address,
            None => (hosts[0].as_str(), PORT)
                .to_socket_addrs()
                .ok()
                .and_then(|mut addresses| addresses.next())
                .ok_or_else(|| ClusterError::Address(format!("{}:{PORT}", hosts[0])))?,
        };
        let links = if rank == 0 { accept(&hosts, address, job)? } else { vec![connect(&hosts, rank, address, job)?] };
        Ok(Self { hosts, rank, links })
    }

    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// The first host evaluates, exports and writes the model.
    pub fn is_first(&self) -> bool {
        self.rank == 0
    }

    pub fn host(&self) -> &str {
        &self.hosts[self.rank]
    }

    /// The one operation: every host's `part` goes to the first host, `combine` joins them
    /// (in host order) and every host gets the result.
    fn collective(
        &mut self,
        part: Vec<u8>,
        combine: impl FnOnce(Vec<Vec<u8>>) -> Vec<u8>,
    ) -> Result<Vec<u8>, ClusterError> {
        if self.links.is_empty() {
            return Ok(combine(vec![part]));
        }
        if self.rank != 0 {
            let link = &mut self.links[0];
            link.send(&Message::Part(part))?;
            return match link.receive()? {
                Message::Part(result) => Ok(result),
                Message::Failed(reason) => Err(ClusterError::PeerFailed { host: link.host.clone(), reason }),
            };
        }
        let mut parts = vec![part];
        for index in 0..self.links.len() {
            let received = self.links[index].receive();
            match received {
                Ok(Message::Part(part)) => parts.push(part),
                Ok(Message::Failed(reason)) => {
                    let host = self.links[index].host.clone();
                    self.abort(&format!("host {host} failed: {reason}"));
                    return Err(ClusterError::PeerFailed { host, reason });
                }
                Err(err) => {
                    self.abort(&err.to_string());
                    return Err(err);
                }
            }
        }
        let result = combine(parts);
        for link in &mut self.links {
            link.send(&Message::Part(result.clone()))?;
        }
        Ok(result)
    }

    /// Element-wise sums over every host, added in host order.
    pub fn sum(&mut self, values: &mut [f64]) -> Result<(), ClusterError> {
        if self.links.is_empty() {
            return Ok(());
        }
        let length = values.len();
        let result = self.collective(encode(values), |parts| {
            let mut total = vec![0.0; length];
            for part in parts {
                for (sum, value) in total.iter_mut().zip(decode(&part)) {
                    *sum += value;
                }
            }
            encode(&total)
        })?;
        for (value, sum) in values.iter_mut().zip(decode(&result)) {
            *value = sum;
        }
        Ok(())
    }

    /// The first host's values, on every host.
    pub fn broadcast(&mut self, values: &mut [f64]) -> Result<(), ClusterError> {
        if self.rank != 0 {
            values.fill(0.0);
        }
        self.sum(values)
    }

    /// Every host's part, in host order, on every host.
    pub fn gather(&mut self, part: Vec<u8>) -> Result<Vec<Vec<u8>>, ClusterError> {
        let joined = self.collective(part, |parts| {
            let mut joined = Vec::new();
            for part in parts {
                joined.extend_from_slice(&(part.len() as u64).to_le_bytes());
                joined.extend_from_slice(&part);
            }
            joined
        })?;
        let mut parts = Vec::new();
        let mut rest = joined.as_slice();
        while let Some((length, tail)) = rest.split_first_chunk::<8>() {
            let length = usize::try_from(u64::from_le_bytes(*length)).unwrap_or(usize::MAX).min(tail.len());
            parts.push(tail[..length].to_vec());
            rest = &tail[length..];
        }
        Ok(parts)
    }

    /// Tells the peers this host gives up, and why (best effort: a peer may be gone).
    pub fn abort(&mut self, reason: &str) {
        for link in &mut self.links {
            let _ = link.send(&Message::Failed(reason.to_owned()));
        }
    }
}

fn encode(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn decode(bytes: &[u8]) -> impl Iterator<Item = f64> + '_ {
    bytes.chunks_exact(8).map(|chunk| f64::from_le_bytes(chunk.try_into().expect("8 bytes")))
}

impl Link {
    fn new(host: &str, stream: TcpStream) -> std::io::Result<Self> {
        // Collective operations are request and answer: small messages must not wait for
        // Nagle's algorithm.
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(SILENCE))?;
        Ok(Self { host: host.to_owned(), reader: BufReader::new(stream.try_clone()?), writer: BufWriter::new(stream) })
    }

    fn lost(&self, source: std::io::Error) -> ClusterError {
        ClusterError::Lost { host: self.host.clone(), source }
    }

    fn send(&mut self, message: &Message) -> Result<(), ClusterError> {
        let (tag, payload) = match message {
            Message::Part(bytes) => (0_u8, bytes.as_slice()),
            Message::Failed(reason) => (1_u8, reason.as_bytes()),
        };
        let written = self
            .writer
            .write_all(&[tag])
            .and_then(|()| self.writer.write_all(&(payload.len() as u64).to_le_bytes()))
            .and_then(|()| self.writer.write_all(payload))
            .and_then(|()| self.writer.flush());
        written.map_err(|e| self.lost(e))
    }

    fn receive(&mut self) -> Result<Message, ClusterError> {
        let mut header = [0_u8; 9];
        self.reader.read_exact(&mut header).map_err(|e| self.lost(e))?;
        let length = u64::from_le_bytes(header[1..].try_into().expect("8 bytes"));
        let mut payload = Vec::new();
        // `take` bounds the allocation by what really arrives, not by what the header claims.
        (&mut self.reader).take(length).read_to_end(&mut payload).map_err(|e| self.lost(e))?;
        if (payload.len() as u64) < length {
            return Err(self.lost(std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(match header[0] {
            0 => Message::Part(payload),
            _ => Message::Failed(String::from_utf8_lossy(&payload).into_owned()),
        })
    }
}

/// The first host: waits for every other host to connect and introduce itself.
fn accept(hosts: &[String], address: SocketAddr, job: &str) -> Result<Vec<Link>, ClusterError> {
    let listener = TcpListener::bind(address).map_err(|source| ClusterError::Listen { address, source })?;
    listener.set_nonblocking(true).map_err(|source| ClusterError::Listen { address, source })?;
    let deadline = Instant::now() + STARTUP;
    let mut links: Vec<Option<Link>> = (1..hosts.len()).map(|_| None).collect();
    while links.iter().any(Option::is_none) {
        match listener.accept() {
            Ok((stream, _)) => {
                // A connection that does not introduce itself as one of this job's hosts is
                // not one of them: turned away, the wait goes on.
                if let Some((rank, link)) = introduced(stream, hosts, job) {
                    links[rank - 1] = Some(link);
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    let missing = links.iter().filter(|l| l.is_none()).count();
                    return Err(ClusterError::Startup { missing, seconds: STARTUP.as_secs() });
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(source) => return Err(ClusterError::Listen { address, source }),
        }
    }
    Ok(links.into_iter().flatten().collect())
}

/// A worker's greeting: `GREETING`, its rank (u32), the job name's length (u32) and the name.
fn introduced(stream: TcpStream, hosts: &[String], job: &str) -> Option<(usize, Link)> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut reader = &stream;
    let mut header = [0_u8; 16];
    reader.read_exact(&mut header).ok()?;
    let rank = u32::from_le_bytes(header[8..12].try_into().ok()?) as usize;
    let name_length = u32::from_le_bytes(header[12..16].try_into().ok()?) as usize;
    if header[..8] != GREETING[..] || !(1..hosts.len()).contains(&rank) || name_length != job.len() {
        return None;
    }
    let mut name = vec![0; name_length];
    reader.read_exact(&mut name).ok()?;
    if name != job.as_bytes() {
        return None;
    }
    (&stream).write_all(&[1]).ok()?;
    Some((rank, Link::new(&hosts[rank], stream).ok()?))
}

/// A worker: connects to the first host (retrying while it starts) and introduces itself.
fn connect(hosts: &[String], rank: usize, address: SocketAddr, job: &str) -> Result<Link, ClusterError> {
    let deadline = Instant::now() + STARTUP;
    loop {
        let attempt = TcpStream::connect_timeout(&address, Duration::from_secs(5)).and_then(|mut stream| {
            let mut greeting = GREETING.to_vec();
            greeting.extend_from_slice(&(rank as u32).to_le_bytes());
            greeting.extend_from_slice(&(job.len() as u32).to_le_bytes());
            greeting.extend_from_slice(job.as_bytes());
            stream.write_all(&greeting)?;
            stream.set_read_timeout(Some(Duration::from_secs(10)))?;
            let mut accepted = [0_u8; 1];
            stream.read_exact(&mut accepted)?;
            Link::new(&hosts[0], stream)
        });
        match attempt {
            Ok(link) => return Ok(link),
            Err(source) if Instant::now() > deadline => {
                return Err(ClusterError::Connect { address, seconds: STARTUP.as_secs(), source });
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::thread;

    use super::*;

    fn resources(current: &str, hosts: usize) -> ResourceConfig {
        ResourceConfig { current_host: current.into(), hosts: (1..=hosts).map(|i| format!("algo-{i}")).collect() }
    }

    fn free_address() -> SocketAddr {
        TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap()
    }

    /// Runs `work` on every host of an `n`-host job on loopback; the hosts' results in order.
    fn on_hosts<T: Send + 'static>(
        n: usize,
        work: impl Fn(&mut Cluster) -> Result<T, ClusterError> + Send + Sync + Clone + 'static,
    ) -> Vec<Result<T, ClusterError>> {
        let leader = free_address();
        let threads: Vec<_> = (1..=n)
            .map(|i| {
                let work = work.clone();
                thread::spawn(move || {
                    let mut cluster = Cluster::join(&resources(&format!("algo-{i}"), n), Some(leader), "job")?;
                    work(&mut cluster)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }

    #[test]
    fn every_host_gets_the_same_sums_gathers_and_the_first_hosts_broadcast() {
        let results = on_hosts(3, |cluster| {
            let rank = cluster.rank as f64;
            let mut values = vec![rank, 0.1 * rank, 1.0];
            cluster.sum(&mut values)?;
            let gathered = cluster.gather(cluster.host().as_bytes().to_vec())?;
            let mut first = vec![rank + 7.0];
            cluster.broadcast(&mut first)?;
            Ok((values, gathered, first, cluster.is_first()))
        });
        let expected_sum = vec![3.0, 0.1 + 0.2, 3.0];
        let hosts: Vec<Vec<u8>> = ["algo-1", "algo-2", "algo-3"].iter().map(|h| h.as_bytes().to_vec()).collect();
        for (rank, result) in results.into_iter().enumerate() {
            let (sum, gathered, first, is_first) = result.unwrap();
            assert_eq!(sum, expected_sum);
            assert_eq!(gathered, hosts);
            assert_eq!(first, [7.0]);
            assert_eq!(is_first, rank == 0);
        }
    }

    #[test]
    fn a_failing_host_fails_every_host_with_its_reason() {
        let results = on_hosts(3, |cluster| {
            if cluster.rank == 2 {
                cluster.abort("channel train has no rows");
                return Ok(());
            }
            cluster.sum(&mut [1.0])
        });
        for result in &results[..2] {
            let message = result.as_ref().unwrap_err().to_string();
            assert!(message.contains("channel train has no rows"), "{message}");
        }
    }

    #[test]
    fn one_host_needs_no_network_and_the_current_host_must_be_listed() {
        let mut cluster = Cluster::join(&resources("algo-1", 1), None, "job").unwrap();
        let mut values = [2.5];
        cluster.sum(&mut values).unwrap();
        assert_eq!((values, cluster.hosts(), cluster.is_first()), ([2.5], 1, true));
        assert_eq!(cluster.gather(vec![1, 2]).unwrap(), [vec![1, 2]]);
        let unknown = Cluster::join(&resources("algo-9", 2), None, "job").err().unwrap();
        assert!(unknown.to_string().contains("algo-9 is not in"), "{unknown}");
    }

    #[test]
    fn a_connection_from_another_job_is_turned_away() {
        let leader = free_address();
        let first = thread::spawn(move || Cluster::join(&resources("algo-1", 2), Some(leader), "job-a"));
        let mut stranger = loop {
            if let Ok(stream) = TcpStream::connect(leader) {
                break stream;
            }
            thread::sleep(Duration::from_millis(20));
        };
        let mut greeting = GREETING.to_vec();
        greeting.extend_from_slice(&1_u32.to_le_bytes());
        greeting.extend_from_slice(&5_u32.to_le_bytes());
        greeting.extend_from_slice(b"job-b");
        stranger.write_all(&greeting).unwrap();
        assert_eq!(stranger.read(&mut [0_u8; 1]).unwrap(), 0, "the first host hangs up on another job's host");
        let worker = Cluster::join(&resources("algo-2", 2), Some(leader), "job-a").unwrap();
        assert_eq!(first.join().unwrap().unwrap().hosts(), worker.hosts());
    }
}
