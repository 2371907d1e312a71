//! Daemon mode: process groups forked by the Apache parent, requests relayed to them over a
//! UNIX socket with our own framing (`protocol`).

pub mod protocol;
