//! Fuzzes the daemon wire protocol's decoders on stable Rust: a structure-aware mutator
//! (bit flips, truncation, length-field edits, splicing of frames) over a seed corpus made by
//! the real encoders. Every input goes through the decode entry points the daemon (request
//! head, secret, body frames) and the Apache child (response head, status, body, file and end
//! frames) use, the way they use them. An input fails the run when a decoder panics, allocates
//! more than a fixed bound over what the input holds, consumes a frame without making
//! progress, stalls, accepts a payload its encoder would never produce (decode then encode
//! must give the same bytes), or hands on a value its caller cannot act on.
//!
//! `cargo test --test fuzz_protocol` runs a short fixed-seed pass; `make fuzz
//! FUZZ_SECONDS=60` (see docs/fuzzing.md) a longer one. Environment: `FUZZ_SECONDS`,
//! `FUZZ_ITERATIONS`, `FUZZ_SEED`, and `FUZZ_REPLAY=<file>` to run one saved input.

mod corpus;
mod oracle;

use corpus::{Rng, mutate_once, seeds};
use mod_rwsgi::daemon::protocol::{self, Kind, MAX_BODY, RequestHead};
use oracle::{as_client, as_daemon, check};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

// ---- allocation accounting (per thread, so parallel tests do not disturb it) ----

struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note_alloc(n: usize) {
    let _ = LIVE.try_with(|l| {
        let v = l.get() + n;
        l.set(v);
        let _ = PEAK.try_with(|p| p.set(p.get().max(v)));
    });
}

fn note_free(n: usize) {
    let _ = LIVE.try_with(|l| l.set(l.get().saturating_sub(n)));
}

// SAFETY: every call is forwarded unchanged to the system allocator; only counters change.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_alloc(layout.size());
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_free(layout.size());
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_free(layout.size());
        note_alloc(new_size);
        // SAFETY: forwarded with the caller's arguments.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes allocated at once while decoding one input may not exceed this over a fixed 16 times
/// the input: a frame may cost memory for what arrived, never for what its header claims.
const ALLOC_SLACK: usize = 2 * MAX_BODY + (64 << 10);

/// `check` with panics and memory use turned into violations.
fn check_guarded(input: &[u8], trickle_seed: u64) -> Result<(), String> {
    let base = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(base));
    let r = std::panic::catch_unwind(|| check(input, trickle_seed));
    let peak = PEAK.with(Cell::get) - base;
    match r {
        Err(p) => {
            let msg = p
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            Err(format!("panic: {msg}"))
        }
        Ok(Err(e)) => Err(e),
        Ok(Ok(())) if peak > 16 * input.len() + ALLOC_SLACK => Err(format!(
            "decoding {} bytes allocated {peak} bytes at once",
            input.len()
        )),
        Ok(Ok(())) => Ok(()),
    }
}

// ---- the driver ----

struct Budget {
    seed: u64,
    iterations: u64,
    time: Duration,
}

struct Outcome {
    runs: u64,
    elapsed: Duration,
    corpus: usize,
}

/// Largest input the mutator builds (bigger ones are cut).
const MAX_INPUT: usize = 64 << 10;

fn fuzz(budget: &Budget) -> Result<Outcome, String> {
    let mut rng = Rng(budget.seed);
    let mut corpus = seeds();
    for s in &corpus {
        check_guarded(s, 1).map_err(|e| format!("a seed fails: {e}"))?;
    }
    // A stall (a decoder that loops) cannot be caught in place: a watchdog reports the input.
    let current: Arc<Mutex<Vec<u8>>> = Arc::default();
    let progress = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let watchdog = {
        let (current, progress, done) = (current.clone(), progress.clone(), done.clone());
        std::thread::spawn(move || {
            let mut last = (u64::MAX, Instant::now());
            while done.load(Ordering::Relaxed) == 0 {
                std::thread::sleep(Duration::from_millis(100));
                let p = progress.load(Ordering::Relaxed);
                if p != last.0 {
                    last = (p, Instant::now());
                } else if last.1.elapsed() > Duration::from_secs(10) {
                    let input = current.lock().map(|c| c.clone()).unwrap_or_default();
                    eprintln!(
                        "fuzz_protocol: one input has run for 10 s (a decoder loops): {}",
                        hex(&input)
                    );
                    std::process::abort();
                }
            }
        })
    };
    let start = Instant::now();
    let mut runs = 0u64;
    let mut result = Ok(());
    while runs < budget.iterations && start.elapsed() < budget.time {
        let mut input = corpus[rng.below(corpus.len())].clone();
        for _ in 0..=rng.below(4) {
            mutate_once(&mut input, &corpus, &mut rng);
        }
        input.truncate(MAX_INPUT);
        if let Ok(mut c) = current.lock() {
            c.clone_from(&input);
        }
        let trickle_seed = rng.next();
        if let Err(e) = check_guarded(&input, trickle_seed) {
            let path =
                std::env::temp_dir().join(format!("fuzz-protocol-{}-{runs}.bin", budget.seed));
            let _ = std::fs::write(&path, &input);
            result = Err(format!(
                "input {runs} (seed {}, trickle {trickle_seed}): {e}\ninput saved to {} \
                 (FUZZ_REPLAY=<file>): {}",
                budget.seed,
                path.display(),
                hex(&input[..input.len().min(512)])
            ));
            break;
        }
        runs += 1;
        progress.store(runs, Ordering::Relaxed);
        // Without coverage feedback, inputs that still decode keep the structure deep
        // mutations need; a bounded corpus keeps the run's memory flat.
        if keeps_structure(&input) {
            if corpus.len() < 512 {
                corpus.push(input);
            } else {
                let i = 16 + rng.below(corpus.len() - 16);
                corpus[i] = input;
            }
        }
    }
    done.store(1, Ordering::Relaxed);
    let _ = watchdog.join();
    result.map(|()| Outcome {
        runs,
        elapsed: start.elapsed(),
        corpus: corpus.len(),
    })
}

/// True when some frame of `input` decodes as a head: worth mutating further.
fn keeps_structure(input: &[u8]) -> bool {
    let mut r = input;
    let mut buf = Vec::new();
    match protocol::read_frame(&mut r, &mut buf) {
        Ok(Some(Kind::RequestHead)) => RequestHead::decode(&buf).is_ok() && !r.is_empty(),
        Ok(Some(Kind::ResponseHead)) => {
            protocol::decode_response_head(&buf).is_ok() && !r.is_empty()
        }
        _ => false,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16).ok(),
        None => v.parse().ok(),
    }
}

/// The fixed-seed pass every `cargo test` runs, or the run the environment asks for.
#[test]
fn protocol_decoders_survive_mutated_frames() {
    if let Ok(path) = std::env::var("FUZZ_REPLAY") {
        let input = std::fs::read(&path).expect("FUZZ_REPLAY names a readable file");
        if let Err(e) = check_guarded(&input, env_u64("FUZZ_TRICKLE").unwrap_or(1)) {
            panic!("{path}: {e}");
        }
        return;
    }
    let seconds = env_u64("FUZZ_SECONDS");
    let budget = Budget {
        seed: env_u64("FUZZ_SEED").unwrap_or_else(|| {
            if seconds.is_some() {
                // A long run explores a new part of the space each time; the seed is printed.
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            } else {
                0x5eed_f00d
            }
        }),
        iterations: env_u64("FUZZ_ITERATIONS").unwrap_or(if seconds.is_some() {
            u64::MAX
        } else {
            20_000
        }),
        // The quick pass is bounded by its iteration count; the time is a safety net.
        time: Duration::from_secs(seconds.unwrap_or(60)),
    };
    match fuzz(&budget) {
        Ok(o) => println!(
            "fuzz_protocol: seed {:#x}: {} inputs in {:.1} s ({:.0} inputs/s), corpus {}",
            budget.seed,
            o.runs,
            o.elapsed.as_secs_f64(),
            o.runs as f64 / o.elapsed.as_secs_f64().max(1e-9),
            o.corpus
        ),
        Err(e) => panic!("fuzz_protocol: {e}"),
    }
}

/// The seeds themselves decode, so the mutator starts from frames the daemon really sends.
#[test]
fn seed_corpus_decodes() {
    for s in seeds() {
        let mut log = as_daemon(&mut &s[..], |r: &&[u8]| r.len()).unwrap();
        log.extend(as_client(&mut &s[..], |r: &&[u8]| r.len()).unwrap());
        assert!(
            !log.iter()
                .any(|l| l.starts_with("error") || l.starts_with("bad")),
            "{log:?}"
        );
    }
}
