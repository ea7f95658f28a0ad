//! The last two layers pid 1 of a stage puts on itself before it starts the program (both are
//! inherited and cannot be lifted): a seccomp deny list and, where the kernel has it, Landlock.

use std::collections::BTreeMap;

use landlock::{
    path_beneath_rules, Access, AccessFs, BitFlags, Ruleset, RulesetAttr, RulesetCreatedAttr,
    RulesetStatus, ABI,
};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule,
};

/// System calls no compiler or contest program needs, each refused with EPERM: tracing and
/// reading other processes, mounts and namespaces, kernel programs and keys, modules, kexec,
/// swap, reboot, clocks, io_uring (it bypasses this filter), handle-based opens.
const DENIED: &[i64] = &[
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_kcmp,
    libc::SYS_pidfd_getfd,
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_unshare,
    libc::SYS_setns,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_reboot,
    libc::SYS_syslog,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_sethostname,
    libc::SYS_setdomainname,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_open_by_handle_at,
    libc::SYS_name_to_handle_at,
    libc::SYS_fanotify_init,
];

/// clone flags that make namespaces: a clone with any of them is refused.
const NAMESPACE_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWNS,
    libc::CLONE_NEWCGROUP,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
];

fn condition(arg: u8, op: SeccompCmpOp, value: u64) -> Result<SeccompCondition, String> {
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
        .map_err(|e| format!("seccomp condition: {e}"))
}

fn rule(conditions: Vec<SeccompCondition>) -> Result<SeccompRule, String> {
    SeccompRule::new(conditions).map_err(|e| format!("seccomp rule: {e}"))
}

fn compile(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    action: SeccompAction,
) -> Result<BpfProgram, String> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp: {e}"))?;
    SeccompFilter::new(rules, SeccompAction::Allow, action, arch)
        .and_then(BpfProgram::try_from)
        .map_err(|e| format!("seccomp filter: {e}"))
}

/// The deny list: [`DENIED`], sockets of any family but AF_UNIX, clones that make namespaces
/// (EPERM); and clone3 (ENOSYS: its flags are in memory, out of a filter's reach, and libc
/// falls back to clone, whose flags are checked).
fn programs() -> Result<[BpfProgram; 2], String> {
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&call| (call, Vec::new())).collect();
    let not_unix = condition(0, SeccompCmpOp::Ne, libc::AF_UNIX as u64)?;
    rules.insert(libc::SYS_socket, vec![rule(vec![not_unix])?]);
    let mut clone_rules = Vec::new();
    for flag in NAMESPACE_FLAGS {
        let flag = flag as u64;
        clone_rules.push(rule(vec![condition(
            0,
            SeccompCmpOp::MaskedEq(flag),
            flag,
        )?])?);
    }
    rules.insert(libc::SYS_clone, clone_rules);
    let denied = compile(rules, SeccompAction::Errno(libc::EPERM as u32))?;
    let clone3 = compile(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Errno(libc::ENOSYS as u32),
    )?;
    Ok([denied, clone3])
}

/// Installs the seccomp filters on the calling (single-threaded) process.
pub(crate) fn seccomp() -> Result<(), String> {
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
    for program in programs()? {
        seccompiler::apply_filter(&program).map_err(|e| format!("cannot install seccomp: {e}"))?;
    }
    Ok(())
}

/// Landlock, second layer under the read-only mounts: read and execute anywhere in the stage's
/// root, write only in /job, /tmp, /dev/shm and to the harmless devices. Returns how much the
/// kernel enforced: `full`, `partial` or `none` (no Landlock in this kernel).
pub(crate) fn landlock() -> Result<&'static str, String> {
    let abi = ABI::V5;
    // Directories are left to the read-only mounts: Landlock checks each mkdir by walking up to
    // the rule's directory, which makes a 20,000-deep chain cost minutes of CPU instead of
    // milliseconds.
    let handled = AccessFs::from_all(abi) & !BitFlags::from(AccessFs::MakeDir);
    let status = Ruleset::default()
        .handle_access(handled)
        .and_then(|ruleset| ruleset.create())
        .and_then(|ruleset| ruleset.add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi))))
        .and_then(|ruleset| {
            ruleset.add_rules(path_beneath_rules(["/job", "/tmp", "/dev/shm"], handled))
        })
        .and_then(|ruleset| {
            ruleset.add_rules(path_beneath_rules(
                ["/dev/null", "/dev/zero", "/dev/full"],
                AccessFs::ReadFile | AccessFs::WriteFile,
            ))
        })
        .and_then(|ruleset| ruleset.restrict_self())
        .map_err(|e| format!("landlock: {e}"))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => "full",
        RulesetStatus::PartiallyEnforced => "partial",
        RulesetStatus::NotEnforced => "none",
    })
}
