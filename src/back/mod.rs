//! The back end: where every finished connection drains.

pub mod recycler;
