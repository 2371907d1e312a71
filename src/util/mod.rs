//! Small pure helpers with no Apache or Python dependency.

pub mod clock;
