//! Constants and structures of newer kernel interfaces that the `libc`
//! crate does not carry for every target, in one place. Values from the
//! kernel's uapi headers, cited per item.

/// include/uapi/linux/mount.h: `OPEN_TREE_CLONE`.
pub const OPEN_TREE_CLONE: u32 = 1;
/// include/uapi/linux/mount.h: `OPEN_TREE_CLOEXEC` (= O_CLOEXEC).
pub const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
/// include/uapi/linux/mount.h: `MOVE_MOUNT_F_EMPTY_PATH`.
pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x04;
/// include/uapi/linux/mount.h: `MOVE_MOUNT_T_EMPTY_PATH`.
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;
/// include/uapi/linux/mount.h: `MOUNT_ATTR_RDONLY`.
pub const MOUNT_ATTR_RDONLY: u64 = 0x0000_0001;
/// include/uapi/linux/mount.h: `MOUNT_ATTR_NOSUID`.
pub const MOUNT_ATTR_NOSUID: u64 = 0x0000_0002;
/// include/uapi/linux/mount.h: `MOUNT_ATTR_NODEV`.
pub const MOUNT_ATTR_NODEV: u64 = 0x0000_0004;
/// include/uapi/linux/mount.h: `MOUNT_ATTR_NOEXEC`.
pub const MOUNT_ATTR_NOEXEC: u64 = 0x0000_0008;
/// include/uapi/linux/fcntl.h: `AT_RECURSIVE`.
pub const AT_RECURSIVE: u32 = 0x8000;
/// include/uapi/linux/openat2.h: `RESOLVE_NO_MAGICLINKS`.
pub const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
/// include/uapi/linux/openat2.h: `RESOLVE_NO_SYMLINKS`.
pub const RESOLVE_NO_SYMLINKS: u64 = 0x04;
/// include/uapi/linux/openat2.h: `RESOLVE_IN_ROOT`.
pub const RESOLVE_IN_ROOT: u64 = 0x10;
/// include/uapi/linux/magic.h: `NSFS_MAGIC`.
pub const NSFS_MAGIC: i64 = 0x6e73_6673;
/// include/uapi/linux/magic.h: `PROC_SUPER_MAGIC`.
pub const PROC_SUPER_MAGIC: i64 = 0x9fa0;
/// include/uapi/linux/close_range.h: `CLOSE_RANGE_CLOEXEC`.
pub const CLOSE_RANGE_CLOEXEC: u32 = 1 << 2;
/// `statvfs.f_flag` bits (include/linux/statfs.h `ST_*`; musl's libc
/// crate lacks some of them).
pub const ST_RDONLY: u64 = 0x0001;
pub const ST_NOSUID: u64 = 0x0002;
pub const ST_NODEV: u64 = 0x0004;
pub const ST_NOEXEC: u64 = 0x0008;
pub const ST_NOATIME: u64 = 0x0400;
pub const ST_NODIRATIME: u64 = 0x0800;
pub const ST_RELATIME: u64 = 0x1000;
pub const ST_NOSYMFOLLOW: u64 = 0x2000;
/// include/uapi/linux/mount.h: `struct mount_attr` (MOUNT_ATTR_SIZE_VER0).
#[repr(C)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}
/// include/uapi/linux/openat2.h: `struct open_how`.
#[repr(C)]
pub struct OpenHow {
    pub flags: u64,
    pub mode: u64,
    pub resolve: u64,
}
