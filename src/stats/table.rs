//! The layout of the shared-memory figures table and the lock-free updates on it.
//!
//! ```text
//! Header | Slot 0 .. Slot E-1 (embedded)        | Slot E .. Slot E+D-1 (daemon, reserved)
//!          index = Apache scoreboard child slot   index = E + daemon process number
//! ```
//!
//! `E` is the MPM's hard process limit (`ServerLimit`), so every Apache child has its own slot
//! whatever its generation. The `D` daemon slots are reserved for daemon-mode processes, which
//! claim theirs with [`SlotKind::Daemon`] and their process-group name; nothing else changes.
//!
//! Only the process that owns a slot writes to it (its request threads with relaxed atomic
//! adds; claiming an application-group cell is serialised inside that process by the caller);
//! any process reads every slot. Figures are cumulative per slot: a process that takes over a
//! slot (a replacement child or daemon) keeps adding to them and bumps `restarts`, so
//! counters never go back while the table lives (it lives across graceful restarts); only a
//! daemon slot handed to another process group by a new configuration starts from zero.
//!
//! Every field is an atomic, so all-zero memory is a valid, empty table.

use std::sync::atomic::{AtomicI32, AtomicI64, AtomicU8, AtomicU32, AtomicU64, Ordering};

/// Application groups tracked per slot; the last cell is the overflow bucket.
pub const APP_GROUPS: usize = 16;
/// Bytes of a group name kept (longer names are cut; identity is the full name's hash).
pub const NAME_MAX: usize = 64;
/// Name shown for the overflow cell, which gathers groups beyond the first `APP_GROUPS - 1`.
pub const OVERFLOW_NAME: &str = "(other)";
/// Upper bounds (µs) of the response-time histogram buckets; a last bucket takes the rest.
pub const BUCKET_BOUNDS_US: [u64; 11] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];
/// Histogram buckets, the open-ended one included.
pub const BUCKETS: usize = BUCKET_BOUNDS_US.len() + 1;
/// Status classes counted: 1xx to 5xx (anything outside counts as 5xx).
pub const STATUS_CLASSES: usize = 5;
/// Table layout version, bumped when the layout changes.
const MAGIC: u64 = 0x5257_5347_4953_0001;

/// What kind of process holds a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotKind {
    /// Never used.
    Free,
    /// An Apache child running apps in embedded mode.
    Embedded,
    /// A daemon-mode process.
    Daemon,
}

impl SlotKind {
    fn code(self) -> u32 {
        match self {
            SlotKind::Free => 0,
            SlotKind::Embedded => 1,
            SlotKind::Daemon => 2,
        }
    }
    fn from_code(c: u32) -> SlotKind {
        match c {
            1 => SlotKind::Embedded,
            2 => SlotKind::Daemon,
            _ => SlotKind::Free,
        }
    }
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            SlotKind::Free => "free",
            SlotKind::Embedded => "embedded",
            SlotKind::Daemon => "daemon",
        }
    }
}

/// A short name stored as atomics (written once before being published).
#[repr(C)]
struct Name {
    len: AtomicU32,
    bytes: [AtomicU8; NAME_MAX],
}

impl Name {
    fn set(&self, s: &str) {
        let b = s.as_bytes();
        let mut n = b.len().min(NAME_MAX);
        while !s.is_char_boundary(n) {
            n -= 1;
        }
        for (cell, &byte) in self.bytes.iter().zip(&b[..n]) {
            cell.store(byte, Ordering::Relaxed);
        }
        self.len.store(n as u32, Ordering::Relaxed);
    }
    fn get(&self) -> String {
        let n = (self.len.load(Ordering::Relaxed) as usize).min(NAME_MAX);
        let b: Vec<u8> = self.bytes[..n]
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        String::from_utf8_lossy(&b).into_owned()
    }
}

/// One application group's figures in one slot.
#[repr(C)]
pub struct GroupCell {
    /// Hash of the full name; 0 = free. Stored last, with Release, once the name is written.
    hash: AtomicU64,
    name: Name,
    status: [AtomicU64; STATUS_CLASSES],
    buckets: [AtomicU64; BUCKETS],
    time_us: AtomicU64,
}

/// One process's figures.
#[repr(C)]
pub struct Slot {
    /// Owner pid; 0 = never used. Stored last, with Release, when a process claims the slot.
    pid: AtomicI32,
    kind: AtomicU32,
    generation: AtomicI32,
    interpreters: AtomicU32,
    started_us: AtomicI64,
    restarts: AtomicU64,
    active: AtomicI64,
    max_us: AtomicU64,
    process_group: Name,
    groups: [GroupCell; APP_GROUPS],
}

/// The table's first bytes.
#[repr(C)]
pub struct Header {
    magic: AtomicU64,
    embedded_slots: AtomicU32,
    daemon_slots: AtomicU32,
}

/// The bytes a table of that shape needs.
pub fn size_for(embedded: u32, daemon: u32) -> usize {
    slots_offset() + std::mem::size_of::<Slot>() * (embedded as usize + daemon as usize)
}

/// Where the slots start (after the header, cache-line aligned).
pub fn slots_offset() -> usize {
    std::mem::size_of::<Header>().next_multiple_of(64)
}

/// A view of a mapped table.
#[derive(Clone, Copy)]
pub struct Table {
    header: &'static Header,
    slots: &'static [Slot],
}

impl Table {
    /// Wraps mapped memory (zeroed, or a table of the same shape); stamps a fresh header.
    pub fn new(header: &'static Header, slots: &'static [Slot], embedded: u32) -> Table {
        if header.magic.load(Ordering::Acquire) != MAGIC {
            header.embedded_slots.store(embedded, Ordering::Relaxed);
            header
                .daemon_slots
                .store(slots.len() as u32 - embedded, Ordering::Relaxed);
            header.magic.store(MAGIC, Ordering::Release);
        }
        Table { header, slots }
    }

    /// Embedded slots (the MPM's hard process limit).
    pub fn embedded_slots(&self) -> usize {
        self.header.embedded_slots.load(Ordering::Relaxed) as usize
    }

    /// The slot for Apache child slot `index`.
    pub fn embedded(&self, index: usize) -> Option<&'static Slot> {
        (index < self.embedded_slots()).then(|| &self.slots[index])
    }

    /// The slot of daemon process `index` (counted over all daemon groups).
    pub fn daemon(&self, index: usize) -> Option<&'static Slot> {
        self.slots.get(self.embedded_slots() + index)
    }

    /// Every slot a process has used, with its table index.
    pub fn used(&self) -> impl Iterator<Item = (usize, &'static Slot)> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.pid.load(Ordering::Acquire) != 0)
    }
}

/// FNV-1a; never 0 (0 marks a free cell).
fn name_hash(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in s.as_bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h.max(1)
}

fn status_class(status: i32) -> usize {
    match status {
        100..=599 => status as usize / 100 - 1,
        _ => STATUS_CLASSES - 1,
    }
}

fn bucket(us: u64) -> usize {
    BUCKET_BOUNDS_US
        .iter()
        .position(|&b| us <= b)
        .unwrap_or(BUCKETS - 1)
}

impl Slot {
    /// Makes this slot `pid`'s. A new owner of the same kind and process group (a
    /// replacement) keeps the cumulative figures, counts a restart and starts with no
    /// requests in flight; any other owner (a daemon slot that a new configuration gave to
    /// another group) starts from zero, as its figures are another series.
    pub fn claim(
        &self,
        pid: i32,
        kind: SlotKind,
        process_group: &str,
        generation: i32,
        now_us: i64,
    ) {
        if self.pid.load(Ordering::Acquire) == pid {
            return;
        }
        if self.pid.load(Ordering::Relaxed) != 0 {
            if self.kind.load(Ordering::Relaxed) == kind.code()
                && self.process_group.get() == process_group
            {
                self.restarts.fetch_add(1, Ordering::Relaxed);
            } else {
                self.clear();
            }
        }
        self.active.store(0, Ordering::Relaxed);
        self.kind.store(kind.code(), Ordering::Relaxed);
        self.generation.store(generation, Ordering::Relaxed);
        self.started_us.store(now_us, Ordering::Relaxed);
        self.process_group.set(process_group);
        self.pid.store(pid, Ordering::Release);
    }

    /// Zeroes the figures (the owner, rewritten by the caller, aside).
    fn clear(&self) {
        self.restarts.store(0, Ordering::Relaxed);
        self.max_us.store(0, Ordering::Relaxed);
        for g in &self.groups {
            g.hash.store(0, Ordering::Release);
            g.status.iter().for_each(|c| c.store(0, Ordering::Relaxed));
            g.buckets.iter().for_each(|c| c.store(0, Ordering::Relaxed));
            g.time_us.store(0, Ordering::Relaxed);
        }
    }

    /// Records how many interpreters the owner runs.
    pub fn set_interpreters(&self, n: u32) {
        self.interpreters.store(n, Ordering::Relaxed);
    }

    /// The cell of application group `name` when no claim is needed: its own, or the
    /// overflow cell once that is in use (it is taken only when every named cell is).
    /// No writes.
    pub fn find_group(&self, name: &str) -> Option<usize> {
        let h = name_hash(name);
        self.groups[..APP_GROUPS - 1]
            .iter()
            .position(|g| g.hash.load(Ordering::Acquire) == h)
            .or_else(|| {
                (self.groups[APP_GROUPS - 1].hash.load(Ordering::Acquire) != 0)
                    .then_some(APP_GROUPS - 1)
            })
    }

    /// Gives `name` a cell (the overflow cell when all are taken). The caller serialises
    /// calls within the owning process.
    pub fn claim_group(&self, name: &str) -> usize {
        if let Some(i) = self.find_group(name) {
            return i;
        }
        let h = name_hash(name);
        for (i, g) in self.groups[..APP_GROUPS - 1].iter().enumerate() {
            if g.hash.load(Ordering::Acquire) == 0 {
                g.name.set(name);
                g.hash.store(h, Ordering::Release);
                return i;
            }
        }
        let last = &self.groups[APP_GROUPS - 1];
        if last.hash.load(Ordering::Acquire) == 0 {
            last.name.set(OVERFLOW_NAME);
            last.hash.store(1, Ordering::Release);
        }
        APP_GROUPS - 1
    }

    /// A request of process `pid` starts. Counted as active only while `pid` owns the slot
    /// (returned): a daemon still finishing requests after its replacement claimed the slot
    /// must not leave the new owner's active count off.
    pub fn begin(&self, pid: i32) -> bool {
        let own = self.pid.load(Ordering::Relaxed) == pid;
        if own {
            self.active.fetch_add(1, Ordering::Relaxed);
        }
        own
    }

    /// A request of group cell `group` ended with `status` after `us` microseconds;
    /// `pid` and `active` are its [`Slot::begin`]'s.
    pub fn end(&self, group: usize, status: i32, us: u64, pid: i32, active: bool) {
        let g = &self.groups[group.min(APP_GROUPS - 1)];
        g.status[status_class(status)].fetch_add(1, Ordering::Relaxed);
        g.buckets[bucket(us)].fetch_add(1, Ordering::Relaxed);
        g.time_us.fetch_add(us, Ordering::Relaxed);
        self.max_us.fetch_max(us, Ordering::Relaxed);
        if active && self.pid.load(Ordering::Relaxed) == pid {
            self.active.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The owner's pid (0 when never used).
    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::Acquire)
    }

    /// A plain copy of the slot's figures.
    pub fn snapshot(&self, index: usize) -> SlotFigures {
        let groups = self
            .groups
            .iter()
            .filter(|g| g.hash.load(Ordering::Acquire) != 0)
            .map(|g| GroupFigures {
                name: g.name.get(),
                status: std::array::from_fn(|i| g.status[i].load(Ordering::Relaxed)),
                buckets: std::array::from_fn(|i| g.buckets[i].load(Ordering::Relaxed)),
                time_us: g.time_us.load(Ordering::Relaxed),
            })
            .collect();
        SlotFigures {
            index,
            pid: self.pid(),
            kind: SlotKind::from_code(self.kind.load(Ordering::Relaxed)),
            process_group: self.process_group.get(),
            generation: self.generation.load(Ordering::Relaxed),
            interpreters: self.interpreters.load(Ordering::Relaxed),
            started_us: self.started_us.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            active: self.active.load(Ordering::Relaxed).max(0),
            max_us: self.max_us.load(Ordering::Relaxed),
            live: true,
            rss_bytes: 0,
            groups,
        }
    }
}

/// One application group's figures, copied out.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GroupFigures {
    pub name: String,
    /// Requests per status class, 1xx first.
    pub status: [u64; STATUS_CLASSES],
    /// Requests per histogram bucket (not cumulative).
    pub buckets: [u64; BUCKETS],
    pub time_us: u64,
}

impl GroupFigures {
    /// Requests finished.
    pub fn requests(&self) -> u64 {
        self.status.iter().sum()
    }
}

/// One slot's figures, copied out (plus what the reader adds: liveness, RSS).
#[derive(Debug, Clone, PartialEq)]
pub struct SlotFigures {
    pub index: usize,
    pub pid: i32,
    pub kind: SlotKind,
    pub process_group: String,
    pub generation: i32,
    pub interpreters: u32,
    pub started_us: i64,
    pub restarts: u64,
    pub active: i64,
    pub max_us: u64,
    /// Whether the owner still runs (set by the reader).
    pub live: bool,
    /// Resident set size (set by the reader; 0 when unknown).
    pub rss_bytes: u64,
    pub groups: Vec<GroupFigures>,
}

impl SlotFigures {
    /// Requests finished.
    pub fn requests(&self) -> u64 {
        self.groups.iter().map(GroupFigures::requests).sum()
    }
    /// Sum of the response times, µs.
    pub fn time_us(&self) -> u64 {
        self.groups.iter().map(|g| g.time_us).sum()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A zeroed table in leaked memory.
    pub(crate) fn table(embedded: u32, daemon: u32) -> Table {
        let n = (embedded + daemon) as usize;
        let header: &'static Header = Box::leak(Box::new(Header {
            magic: AtomicU64::new(0),
            embedded_slots: AtomicU32::new(0),
            daemon_slots: AtomicU32::new(0),
        }));
        let slots: Vec<Slot> = (0..n).map(|_| empty_slot()).collect();
        Table::new(header, Box::leak(slots.into_boxed_slice()), embedded)
    }

    fn name() -> Name {
        Name {
            len: AtomicU32::new(0),
            bytes: std::array::from_fn(|_| AtomicU8::new(0)),
        }
    }

    fn empty_slot() -> Slot {
        Slot {
            pid: AtomicI32::new(0),
            kind: AtomicU32::new(0),
            generation: AtomicI32::new(0),
            interpreters: AtomicU32::new(0),
            started_us: AtomicI64::new(0),
            restarts: AtomicU64::new(0),
            active: AtomicI64::new(0),
            max_us: AtomicU64::new(0),
            process_group: name(),
            groups: std::array::from_fn(|_| GroupCell {
                hash: AtomicU64::new(0),
                name: name(),
                status: std::array::from_fn(|_| AtomicU64::new(0)),
                buckets: std::array::from_fn(|_| AtomicU64::new(0)),
                time_us: AtomicU64::new(0),
            }),
        }
    }

    #[test]
    fn classes_and_buckets() {
        assert_eq!(status_class(200), 1);
        assert_eq!(status_class(404), 3);
        assert_eq!(status_class(999), 4);
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(5_000), 0);
        assert_eq!(bucket(5_001), 1);
        assert_eq!(bucket(10_000_001), BUCKETS - 1);
    }

    #[test]
    fn groups_overflow_into_the_last_cell() {
        let t = table(2, 1);
        let s = t.embedded(1).unwrap();
        s.claim(42, SlotKind::Embedded, "", 0, 1);
        assert_eq!(s.find_group("g0"), None);
        for i in 0..APP_GROUPS + 3 {
            let g = s.claim_group(&format!("g{i}"));
            assert_eq!(g, i.min(APP_GROUPS - 1));
        }
        assert_eq!(s.claim_group("g3"), 3);
        assert_eq!(s.find_group("g99"), Some(APP_GROUPS - 1));
        let f = s.snapshot(1);
        assert_eq!(f.groups.len(), APP_GROUPS);
        assert_eq!(f.groups[APP_GROUPS - 1].name, OVERFLOW_NAME);
    }

    #[test]
    fn a_new_owner_keeps_counters_and_counts_a_restart() {
        let t = table(1, 0);
        let s = t.embedded(0).unwrap();
        assert!(t.daemon(0).is_none());
        s.claim(10, SlotKind::Embedded, "", 1, 1);
        let g = s.claim_group("a");
        let a = s.begin(10);
        s.end(g, 404, 7_000, 10, a);
        let old = s.begin(10);
        s.claim(11, SlotKind::Embedded, "", 2, 2);
        let new = s.begin(11);
        // The old owner finishing its request leaves the new owner's request active.
        s.end(g, 200, 1, 10, old);
        let f = s.snapshot(0);
        assert_eq!((f.pid, f.restarts, f.active, f.requests()), (11, 1, 1, 2));
        assert!(!s.begin(10));
        s.end(g, 200, 1, 11, new);
        assert_eq!(s.snapshot(0).active, 0);
        let f = s.snapshot(0);
        assert_eq!(f.groups[0].status, [0, 2, 0, 1, 0]);
        assert_eq!(f.groups[0].buckets[1], 1);
        assert_eq!(t.used().count(), 1);
    }

    #[test]
    fn another_process_group_starts_from_zero() {
        let t = table(0, 1);
        let s = t.daemon(0).unwrap();
        s.claim(10, SlotKind::Daemon, "a", 0, 1);
        let g = s.claim_group("x");
        let a = s.begin(10);
        s.end(g, 200, 7_000, 10, a);
        s.claim(11, SlotKind::Daemon, "a", 0, 2);
        assert_eq!((s.snapshot(0).restarts, s.snapshot(0).requests()), (1, 1));
        s.claim(12, SlotKind::Daemon, "b", 0, 3);
        let f = s.snapshot(0);
        assert_eq!((f.restarts, f.requests(), f.max_us), (0, 0, 0));
        assert_eq!(f.process_group, "b");
        assert!(f.groups.is_empty());
    }
}
