//! A userspace link with a delay, for tests that need a long round trip in
//! a lab where the kernel has no netem: frames are read from one interface
//! with an AF_PACKET socket, held for `delay`, and written to the other,
//! both ways. Used to put a lab host "far away" from the others.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

pub struct DelayLink {
    stop: Arc<AtomicBool>,
    threads: Vec<thread::JoinHandle<()>>,
}

fn packet_socket(ifname: &str) -> i32 {
    let name = std::ffi::CString::new(ifname).unwrap();
    // SAFETY: plain libc calls on values we own; errors are checked.
    unsafe {
        let index = libc::if_nametoindex(name.as_ptr());
        assert!(index != 0, "no interface {ifname}");
        let proto = (libc::ETH_P_ALL as u16).to_be();
        let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto));
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        let mut sll: libc::sockaddr_ll = std::mem::zeroed();
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = proto;
        sll.sll_ifindex = index as i32;
        let rc = libc::bind(
            fd,
            (&raw const sll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as u32,
        );
        assert_eq!(rc, 0, "bind {ifname}: {}", std::io::Error::last_os_error());
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 2_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
        fd
    }
}

/// veth leaves TCP/UDP checksums to be filled in later (checksum offload),
/// so a captured frame may carry a partial one: compute it in full.
fn fix_checksum(f: &mut [u8]) {
    if f.len() < 34 || f[12..14] != [0x08, 0x00] {
        return;
    }
    let ip = &f[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    let proto = ip[9];
    let at = match proto {
        6 => 16,
        17 => 6,
        _ => return,
    };
    if total > ip.len() || ihl + at + 2 > total {
        return;
    }
    let seg_start = 14 + ihl;
    let seg_len = total - ihl;
    f[seg_start + at] = 0;
    f[seg_start + at + 1] = 0;
    let mut sum: u32 = 0;
    let mut add = |b: &[u8]| {
        for c in b.chunks(2) {
            sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
        }
    };
    add(&f[14 + 12..14 + 20]);
    add(&[0, proto]);
    add(&(seg_len as u16).to_be_bytes());
    add(&f[seg_start..seg_start + seg_len]);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    let mut c = !(sum as u16);
    if proto == 17 && c == 0 {
        c = 0xffff;
    }
    f[seg_start + at..seg_start + at + 2].copy_from_slice(&c.to_be_bytes());
}

impl DelayLink {
    /// Joins interfaces `a` and `b` of network namespace `netns` with
    /// `delay` each way.
    pub fn start(netns: &str, a: &str, b: &str, delay: Duration) -> DelayLink {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = [
            (a.to_string(), b.to_string()),
            (b.to_string(), a.to_string()),
        ]
        .into_iter()
        .map(|(from, to)| {
            let stop = stop.clone();
            let netns = netns.to_string();
            thread::spawn(move || {
                super::enter_netns(&netns);
                let rx = packet_socket(&from);
                let tx = packet_socket(&to);
                let mut held: VecDeque<(Instant, Vec<u8>)> = VecDeque::new();
                let mut buf = vec![0u8; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    let mut from_addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
                    let mut len = std::mem::size_of::<libc::sockaddr_ll>() as u32;
                    // SAFETY: buf and from_addr outlive the call.
                    let n = unsafe {
                        libc::recvfrom(
                            rx,
                            buf.as_mut_ptr().cast(),
                            buf.len(),
                            0,
                            (&raw mut from_addr).cast(),
                            &mut len,
                        )
                    };
                    // Frames this socket's own interface sent are not traffic to relay.
                    if n > 0 && from_addr.sll_pkttype != libc::PACKET_OUTGOING {
                        let mut frame = buf[..n as usize].to_vec();
                        fix_checksum(&mut frame);
                        held.push_back((Instant::now() + delay, frame));
                    }
                    while held.front().is_some_and(|(due, _)| *due <= Instant::now()) {
                        let (_, frame) = held.pop_front().unwrap();
                        // SAFETY: frame is a valid buffer; tx is bound to `to`.
                        unsafe { libc::send(tx, frame.as_ptr().cast(), frame.len(), 0) };
                    }
                }
                // SAFETY: closing our own descriptors.
                unsafe {
                    libc::close(rx);
                    libc::close(tx);
                }
            })
        })
        .collect();
        DelayLink { stop, threads }
    }
}

impl Drop for DelayLink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
