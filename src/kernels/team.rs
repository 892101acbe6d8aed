//! Threads that decode side by side, a shard of the batch each, and read
//! each weight once between them.
//!
//! A decoding step's products have a few rows per shard against weights
//! far larger than the caches, so each one is as long as its weight takes
//! to stream from memory, and shards that each read every weight read
//! them once per shard. Members of a team meet at each such product
//! instead: when every member still decoding has posted its rows, each
//! computes a share of the weight's columns for all of their rows, and
//! they go on when all shares are written. Each weight then streams once
//! per step, and the rest of a step (attention, sampling, the small
//! element-wise work) stays split by shard, without meeting.
//!
//! The members wait for one another by spinning (a meeting is a few
//! microseconds apart, far less than waking a sleeping thread), so they
//! run on threads of their own for as long as the team lasts: a member
//! that waited for a pool thread which was busy elsewhere could wait for
//! ever. A member that finishes early leaves; the others go on without
//! it, and one left alone computes alone; one that panics makes the
//! others panic rather than wait for its share. Members meet only in the
//! kernel that uses the team (`gemm_rows`), and only when they post the
//! same product; posts that differ (members whose steps diverged) are
//! each computed by their own member, so a mismatch costs a meeting, not
//! a wrong result.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a member posts: its rows of a product, and the product's weight.
#[cfg(all(feature = "flex", target_arch = "x86_64"))]
pub(super) use super::gemm_rows::Job;
#[cfg(not(all(feature = "flex", target_arch = "x86_64")))]
pub(super) type Job = ();

/// Whether a team's members can meet on this CPU: the kernel they meet in
/// (`gemm_rows`, AVX-512) runs here. Elsewhere a team would only be
/// threads that never meet.
pub fn can_meet() -> bool {
    #[cfg(all(feature = "flex", target_arch = "x86_64"))]
    return super::gemm_rows::available();
    #[cfg(not(all(feature = "flex", target_arch = "x86_64")))]
    false
}

/// Runs `work(i)` for each of `members` members on threads of their own,
/// as one team, and returns the results in order. A panic in a member is
/// raised here once every member has ended.
pub fn run<T: Send>(members: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let team = Arc::new(Team::new(members));
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..members)
            .map(|i| {
                let (team, work) = (team.clone(), &work);
                scope.spawn(move || {
                    // A pool of its own, of one thread: what the member
                    // runs in parallel (a product split, an operation over
                    // the batch's rows) runs on that thread, rather than
                    // waking the global pool's, which are the other
                    // members' cores.
                    let pool = rayon::ThreadPoolBuilder::new()
                        .num_threads(1)
                        .thread_name(move |_| format!("team-{i}"))
                        .build()
                        .expect("a thread for a team's member");
                    pool.install(|| {
                        let _member = Membership::join(team, i);
                        work(i)
                    })
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
            .collect()
    })
}

/// Runs `f` on a member's thread without meeting the others: a prompt
/// pass, whose hundreds of rows a shard keep the blocked kernels and their
/// rounding (meeting over them on the dot-product kernel measured no
/// faster). Members that run the same work apart keep meeting over the
/// same products in the same order after it.
pub fn apart<T>(f: impl FnOnce() -> T) -> T {
    let before = APART.replace(true);
    let out = f();
    APART.set(before);
    out
}

/// Whether the calling thread meets its team at its products: it is a
/// member and not `apart`. The products it meets at are then every
/// member's alike, whatever their rows.
#[cfg_attr(not(all(feature = "flex", target_arch = "x86_64")), allow(dead_code))]
pub(super) fn meeting() -> bool {
    !APART.get() && MEMBER.with_borrow(Option::is_some)
}

/// Meets the calling thread's team, which the caller has found it
/// `meeting`, over `job`: `compute(jobs, part, parts)` computes share
/// `part` of `parts` of the jobs posted. False (and nothing computed) when
/// no other member is still working.
#[cfg_attr(not(all(feature = "flex", target_arch = "x86_64")), allow(dead_code))]
pub(super) fn together(job: Job, same: impl Fn(&Job, &Job) -> bool, compute: impl Fn(&[Job], usize, usize)) -> bool {
    MEMBER.with_borrow(|member| match member {
        Some((team, me)) => team.meet(*me, job, same, compute),
        None => false,
    })
}

/// Meetings held and shares computed so far by the calling member's team.
#[cfg(test)]
pub(super) fn tally() -> (u64, u64) {
    MEMBER.with_borrow(|member| {
        let (team, _) = member.as_ref().expect("a member");
        (team.held.load(Ordering::Acquire), team.shares.load(Ordering::Acquire))
    })
}

thread_local! {
    static MEMBER: RefCell<Option<(Arc<Team<Job>>, usize)>> = const { RefCell::new(None) };
    static APART: Cell<bool> = const { Cell::new(false) };
}

/// A thread's place in a team, for as long as it works; leaving (also by
/// a panic) lets the others meet without it.
struct Membership;

impl Membership {
    fn join(team: Arc<Team<Job>>, me: usize) -> Self {
        MEMBER.set(Some((team, me)));
        Membership
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        if let Some((team, me)) = MEMBER.take() {
            team.leave(me);
        }
    }
}

/// The meetings of `members` members posting jobs `J`.
struct Team<J> {
    state: Mutex<State<J>>,
    /// Meetings held so far: a member waits for this to pass the one it
    /// posted to.
    held: AtomicU64,
    /// Shares computed so far: a member goes on once this reaches its
    /// meeting's `done_at`.
    shares: AtomicU64,
    /// A member panicked: the others stop waiting for it, and end too.
    failed: AtomicBool,
}

struct State<J> {
    /// Members still working.
    active: usize,
    /// This meeting's posts so far, by member.
    posted: Vec<Option<J>>,
    /// The last meeting held: who posted, and what.
    held: Vec<(usize, J)>,
    /// The share count at which the last meeting's shares are all done.
    done_at: u64,
}

impl<J: Copy> Team<J> {
    fn new(members: usize) -> Self {
        Team {
            state: Mutex::new(State {
                active: members,
                posted: vec![None; members],
                held: Vec::new(),
                done_at: 0,
            }),
            held: AtomicU64::new(0),
            shares: AtomicU64::new(0),
            failed: AtomicBool::new(false),
        }
    }

    fn meet(&self, me: usize, job: J, same: impl Fn(&J, &J) -> bool, compute: impl Fn(&[J], usize, usize)) -> bool {
        let meeting = {
            let mut state = self.state.lock().unwrap();
            if state.active < 2 {
                return false;
            }
            state.posted[me] = Some(job);
            let meeting = self.held.load(Ordering::Relaxed);
            self.hold_if_all_posted(&mut state);
            meeting
        };
        self.wait(|| self.held.load(Ordering::Acquire) > meeting);
        // No later meeting can be held before this member posts again.
        let (jobs, part, done_at) = {
            let state = self.state.lock().unwrap();
            let part = state
                .held
                .iter()
                .position(|&(m, _)| m == me)
                .expect("a member of the meeting");
            let jobs: Vec<J> = state.held.iter().map(|&(_, j)| j).collect();
            (jobs, part, state.done_at)
        };
        if jobs.iter().all(|j| same(j, &jobs[0])) {
            compute(&jobs, part, jobs.len());
        } else {
            compute(&jobs[part..=part], 0, 1);
        }
        self.shares.fetch_add(1, Ordering::Release);
        // The others write into this member's output and read its rows.
        self.wait(|| self.shares.load(Ordering::Acquire) >= done_at);
        true
    }

    /// Spins until `ready`, yielding the core after a while (members may
    /// outnumber cores, as when tests run side by side); panics if another
    /// member did.
    fn wait(&self, ready: impl Fn() -> bool) {
        let mut spins = 0u32;
        while !ready() {
            assert!(
                !self.failed.load(Ordering::Acquire),
                "another member of the team failed"
            );
            if spins < 1 << 12 {
                spins += 1;
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }

    /// Takes `me` out of the meetings; when it ends by a panic, perhaps
    /// inside a meeting whose share is then never done, the others fail too.
    fn leave(&self, me: usize) {
        if std::thread::panicking() {
            self.failed.store(true, Ordering::Release);
        }
        let mut state = self.state.lock().unwrap();
        state.active -= 1;
        state.posted[me] = None;
        self.hold_if_all_posted(&mut state);
    }

    /// Holds the meeting once every member still working has posted.
    fn hold_if_all_posted(&self, state: &mut State<J>) {
        let posted = state.posted.iter().flatten().count();
        if posted == 0 || posted < state.active {
            return;
        }
        state.held = state
            .posted
            .iter_mut()
            .enumerate()
            .filter_map(|(m, j)| Some((m, j.take()?)))
            .collect();
        state.done_at += state.held.len() as u64;
        self.held.fetch_add(1, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_member_runs_once_on_a_thread_of_its_own_and_results_come_in_order() {
        let here = std::thread::current().id();
        let out = run(3, |i| (i * 10, std::thread::current().id()));
        assert_eq!(out.iter().map(|o| o.0).collect::<Vec<_>>(), [0, 10, 20]);
        assert!(out.iter().all(|o| o.1 != here));
        assert!(out[0].1 != out[1].1 && out[1].1 != out[2].1);
    }

    #[test]
    fn a_members_panic_reaches_the_caller() {
        let result = std::panic::catch_unwind(|| {
            run(2, |i| {
                if i == 1 {
                    panic!("member 1 fails");
                }
            })
        });
        assert!(result.is_err());
    }

    /// Leaves the team when dropped, as a member's thread does.
    struct Leaving<'a>(&'a Team<u32>, usize);

    impl Drop for Leaving<'_> {
        fn drop(&mut self) {
            self.0.leave(self.1);
        }
    }

    /// Runs `member(me)` for three members of `team` at once, each leaving
    /// when it ends; whether each panicked, or what it returned.
    fn three<T: Send>(team: &Team<u32>, member: impl Fn(usize) -> T + Sync) -> Vec<std::thread::Result<T>> {
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..3)
                .map(|me| {
                    let member = &member;
                    scope.spawn(move || {
                        let _leaving = Leaving(team, me);
                        member(me)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join()).collect()
        })
    }

    /// Members 0, 1 and 2 post 3, 3 and 2 jobs: all 7, but member 2's
    /// second is 8. The first meeting shares three ways; at the second,
    /// whose posts differ, each computes its own; after member 2 leaves,
    /// the third shares two ways.
    #[test]
    fn members_share_what_they_post_alike_and_go_on_without_those_that_leave() {
        let team = Team::<u32>::new(3);
        let seen = three(&team, |me| {
            let posts: &[u32] = [&[7, 7, 7][..], &[7, 7, 7], &[7, 8]][me];
            let mut seen = Vec::new();
            for &job in posts {
                let got = RefCell::new(None);
                let met = team.meet(
                    me,
                    job,
                    |a, b| a == b,
                    |jobs, part, parts| *got.borrow_mut() = Some((jobs.to_vec(), part, parts)),
                );
                seen.push((met, got.take()));
            }
            seen
        });
        let seen: Vec<_> = seen.into_iter().map(Result::unwrap).collect();
        let met = |jobs: &[u32], part, parts| (true, Some((jobs.to_vec(), part, parts)));
        assert_eq!(seen[0], [met(&[7, 7, 7], 0, 3), met(&[7], 0, 1), met(&[7, 7], 0, 2)]);
        assert_eq!(seen[1], [met(&[7, 7, 7], 1, 3), met(&[7], 0, 1), met(&[7, 7], 1, 2)]);
        assert_eq!(seen[2], [met(&[7, 7, 7], 2, 3), met(&[8], 0, 1)]);
        assert_eq!(team.shares.load(Ordering::Acquire), 8);
    }

    /// A member that panics inside a meeting never finishes its share; the
    /// others stop waiting for it and fail too, rather than wait for ever.
    #[test]
    fn a_member_failing_inside_a_meeting_fails_the_others() {
        let team = Team::<u32>::new(3);
        let results = three(&team, |me| {
            team.meet(
                me,
                1,
                |a, b| a == b,
                |_, _, _| {
                    if me == 1 {
                        panic!("member 1 fails");
                    }
                },
            )
        });
        assert!(results.iter().all(Result::is_err));
    }
}
