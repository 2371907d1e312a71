//! Plain facts about the hosting server: the MPM's shape and a snapshot of Apache's
//! scoreboard. The Apache adapter reads them; the Python runtime reports them.

/// How the MPM runs requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MpmShape {
    pub threaded: bool,
    pub max_threads: i32,
    pub max_daemons: i32,
}

/// One worker slot.
#[derive(Debug, Clone)]
pub struct Worker {
    pub thread_num: i32,
    pub generation: i32,
    /// Apache's status code (SERVER_DEAD, SERVER_READY, …).
    pub status: u8,
    pub access_count: u64,
    pub bytes_served: u64,
    pub start_time: i64,
    pub stop_time: i64,
    pub last_used: i64,
    pub client: String,
    pub request: String,
    pub vhost: String,
}

/// One process slot.
#[derive(Debug, Clone)]
pub struct Process {
    pub pid: i32,
    pub generation: i32,
    pub quiescing: bool,
    pub workers: Vec<Worker>,
}

/// The whole scoreboard.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub server_limit: i32,
    pub thread_limit: i32,
    pub running_generation: i32,
    /// µs since the epoch.
    pub restart_time: i64,
    pub processes: Vec<Process>,
}
