//! Classic BPF opcodes (linux/filter.h), for the filters of the raw sockets (`socket.rs`) and
//! of the receive ring (`ring.rs`): the kernel drops what they refuse before any copy to us.

pub const LD_B_ABS: u16 = 0x30;
pub const LD_H_ABS: u16 = 0x28;
pub const LD_H_IND: u16 = 0x48;
pub const LDX_B_MSH: u16 = 0xb1;
pub const JEQ_K: u16 = 0x15;
pub const RET_K: u16 = 0x06;
