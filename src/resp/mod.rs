//! The RESP front end.
