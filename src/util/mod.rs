//! Small pure helpers with no Apache or Python dependency.

pub mod clock;
pub mod md5;
