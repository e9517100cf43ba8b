//! The network edge: the acceptor, the idle pool of parked connections, and the send pool
//! of responses waiting on slow readers.

pub mod acceptor;
pub mod idle_pool;
pub mod send_pool;
pub mod wake;
