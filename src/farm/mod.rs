//! The worker farms: front end, static files, CGI, plug-ins; and the shared reply helpers.

pub mod cgi;
pub mod coded_stream;
pub mod front_end;
pub mod plugin;
pub mod reply;
pub mod static_file;
