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
//! Each member's share starts as an equal block of the product's units
//! (its tiles of columns), which it claims a piece at a time from the
//! front; one that runs out takes pieces from the back of the others'.
//! Cores of a shared machine do not run at one speed (another tenant, a
//! frequency step, an interrupt), and with fixed shares every meeting
//! lasted as long as its slowest member's: 4% of a 135M decoding step
//! was spent waiting there for the other member to finish.
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
use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// What a member posts: its rows of a product, and the product's weight.
#[cfg(all(feature = "flex", target_arch = "x86_64"))]
pub(super) use super::gemm_rows::Job;
#[cfg(not(all(feature = "flex", target_arch = "x86_64")))]
pub(super) type Job = ();

/// A post to a meeting.
pub(super) trait Post: Copy {
    /// Whether two posts are the same product, which the members then
    /// compute together.
    fn same(&self, other: &Self) -> bool;
    /// The units of work the product splits into.
    fn units(&self) -> usize;
}

#[cfg(not(all(feature = "flex", target_arch = "x86_64")))]
impl Post for () {
    fn same(&self, _: &Self) -> bool {
        true
    }
    fn units(&self) -> usize {
        0
    }
}

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
/// `meeting`, over `job`: `compute(jobs, claim)` computes a claim's units
/// of the jobs posted (all members' when they are the same product, its
/// own alone otherwise), claim after claim. False (and nothing computed)
/// when no other member is still working.
#[cfg_attr(not(all(feature = "flex", target_arch = "x86_64")), allow(dead_code))]
pub(super) fn together(job: Job, compute: impl Fn(&[Job], Claim)) -> bool {
    MEMBER.with_borrow(|member| match member {
        Some((team, me)) => team.meet(*me, job, compute),
        None => false,
    })
}

/// Meetings held, and members' seats at them, so far by the calling
/// member's team.
#[cfg(test)]
pub(super) fn tally() -> (u64, u64) {
    MEMBER.with_borrow(|member| {
        let (team, _) = member.as_ref().expect("a member");
        (team.held.load(Ordering::Acquire), team.state.lock().unwrap().seats)
    })
}

/// A piece of a meeting's work: `units` to compute, and where the member
/// expects to go on after them (the end of its own block as it stood when
/// claimed, or of a piece taken from another's), for fetching ahead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Claim {
    pub units: Range<usize>,
    pub ahead: usize,
}

/// The pieces a member computes at a meeting: from the front of its own
/// block, then, when the members share one product, from the back of the
/// others'. (A member that has left has an empty block: every unit of its
/// last meeting was claimed before it went on.)
struct Claims<'a, J> {
    team: &'a Team<J>,
    me: usize,
    /// Whether it may take from the others' blocks.
    shared: bool,
    /// Units claimed so far.
    claimed: u64,
}

/// Units a member claims from its own block at once: a quarter of what is
/// left, so that a product of thousands of tiles takes a few dozen claims,
/// but no fewer than `PIECE`, which is also what it takes from another's.
/// A piece of 4 tiles of 4 columns is a few microseconds of a decoding
/// step's products.
const PIECE: usize = 4;

impl<J> Iterator for Claims<'_, J> {
    type Item = Claim;

    fn next(&mut self) -> Option<Claim> {
        let own = &self.team.blocks[self.me];
        let claim = match take(own, |left| (left / 4).max(PIECE), End::Front) {
            Some((units, back)) => Claim { units, ahead: back },
            None if !self.shared => return None,
            None => (0..self.team.blocks.len())
                .filter(|&m| m != self.me)
                .find_map(|other| {
                    let (units, _) = take(&self.team.blocks[other], |_| PIECE, End::Back)?;
                    Some(Claim {
                        ahead: units.end,
                        units,
                    })
                })?,
        };
        self.claimed += claim.units.len() as u64;
        Some(claim)
    }
}

/// Which end of a block a claim takes from.
#[derive(Clone, Copy)]
enum End {
    Front,
    Back,
}

/// A block of units, `front..back`, in one word: front in the high half.
fn pack(units: Range<usize>) -> u64 {
    assert!(units.end <= u32::MAX as usize, "a block's ends fit in half a word");
    ((units.start as u64) << 32) | units.end as u64
}

fn unpack(block: u64) -> Range<usize> {
    (block >> 32) as usize..(block & u32::MAX as u64) as usize
}

/// Takes `size(left)` units (at most what is left) from `end` of `block`:
/// the units, and the block's back as it was. None when it is empty.
fn take(block: &AtomicU64, size: impl Fn(usize) -> usize, end: End) -> Option<(Range<usize>, usize)> {
    let mut now = block.load(Ordering::Acquire);
    loop {
        let Range { start, end: back } = unpack(now);
        if start >= back {
            return None;
        }
        let n = size(back - start).min(back - start);
        let (units, rest) = match end {
            End::Front => (start..start + n, start + n..back),
            End::Back => (back - n..back, start..back - n),
        };
        match block.compare_exchange_weak(now, pack(rest), Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => return Some((units, back)),
            Err(seen) => now = seen,
        }
    }
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
    /// Each member's block of the last meeting's units still unclaimed
    /// (`pack`).
    blocks: Vec<AtomicU64>,
    /// Units of the last meeting computed: a member goes on once this
    /// reaches the meeting's `units`.
    done: AtomicU64,
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
    /// Whether its posts were one product, which its members share.
    shared: bool,
    /// Its units of work, all members' together.
    units: u64,
    /// Members' seats at every meeting held so far.
    #[cfg(test)]
    seats: u64,
}

impl<J: Post> Team<J> {
    fn new(members: usize) -> Self {
        Team {
            state: Mutex::new(State {
                active: members,
                posted: vec![None; members],
                held: Vec::new(),
                shared: false,
                units: 0,
                #[cfg(test)]
                seats: 0,
            }),
            held: AtomicU64::new(0),
            blocks: (0..members).map(|_| AtomicU64::new(0)).collect(),
            done: AtomicU64::new(0),
            failed: AtomicBool::new(false),
        }
    }

    fn meet(&self, me: usize, job: J, compute: impl Fn(&[J], Claim)) -> bool {
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
        let (jobs, shared, units) = {
            let state = self.state.lock().unwrap();
            let jobs = match state.shared {
                true => state.held.iter().map(|&(_, j)| j).collect(),
                false => {
                    let own = state
                        .held
                        .iter()
                        .find(|&&(m, _)| m == me)
                        .expect("a member of the meeting");
                    vec![own.1]
                }
            };
            (jobs, state.shared, state.units)
        };
        let mut claims = Claims {
            team: self,
            me,
            shared,
            claimed: 0,
        };
        for claim in claims.by_ref() {
            compute(&jobs, claim);
        }
        self.done.fetch_add(claims.claimed, Ordering::Release);
        // The others write into this member's output and read its rows.
        self.wait(|| self.done.load(Ordering::Acquire) >= units);
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

    /// Holds the meeting once every member still working has posted: a
    /// product posted by all is cut into equal blocks, one per member;
    /// posts that differ are each their own member's block.
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
        let first = state.held[0].1;
        state.shared = state.held.iter().all(|(_, j)| j.same(&first));
        let parts = state.held.len();
        let mut units = 0;
        for (part, &(m, job)) in state.held.iter().enumerate() {
            let block = match state.shared {
                true => first.units() * part / parts..first.units() * (part + 1) / parts,
                false => 0..job.units(),
            };
            units += block.len();
            self.blocks[m].store(pack(block), Ordering::Relaxed);
        }
        state.units = units as u64;
        #[cfg(test)]
        {
            state.seats += parts as u64;
        }
        // No member is still waiting on the last meeting's count: each
        // posted to this one after it left that one.
        self.done.store(0, Ordering::Relaxed);
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

    /// A job of `n` units, each the same product as any other job of `n`.
    impl Post for u32 {
        fn same(&self, other: &Self) -> bool {
            self == other
        }
        fn units(&self) -> usize {
            *self as usize
        }
    }

    /// Spins until `ready`, yielding the core, for at most 10 s (then the
    /// test's assertions find what went wrong, rather than it hanging).
    fn wait_for(ready: impl Fn() -> bool) {
        let start = std::time::Instant::now();
        while !ready() && start.elapsed().as_secs() < 10 {
            std::thread::yield_now();
        }
    }

    /// Each unit of `units` claimed exactly once, in claims that each
    /// member saw: their units, sorted.
    fn each_once(claims: &[&[Claim]], units: usize) {
        let mut seen: Vec<usize> = claims
            .iter()
            .flat_map(|c| c.iter())
            .flat_map(|c| c.units.clone())
            .collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..units).collect::<Vec<_>>());
    }

    /// Members 0, 1 and 2 post 3, 3 and 2 jobs: all of 40 units, but
    /// member 2's second is of 8. At the first meeting the three share the
    /// 40 units; at the second, whose posts differ, each computes its own
    /// job's; after member 2 leaves, the third shares two ways.
    #[test]
    fn members_share_what_they_post_alike_and_go_on_without_those_that_leave() {
        let team = Team::<u32>::new(3);
        let seen = three(&team, |me| {
            let posts: &[u32] = [&[40, 40, 40][..], &[40, 40, 40], &[40, 8]][me];
            let mut seen = Vec::new();
            for &job in posts {
                // The jobs handed over with each claim, and the claims.
                let got = Mutex::new((Vec::new(), Vec::new()));
                let met = team.meet(me, job, |jobs, claim| {
                    let mut got = got.lock().unwrap();
                    got.0.push(jobs.to_vec());
                    got.1.push(claim);
                });
                seen.push((met, got.into_inner().unwrap()));
            }
            seen
        });
        let seen: Vec<_> = seen.into_iter().map(Result::unwrap).collect();
        assert!(seen.iter().flatten().all(|(met, _)| *met));
        // A member may find its block taken before it claims any of it.
        let jobs = |member: usize, meeting: usize, expected: &[u32]| {
            assert!(seen[member][meeting].1.0.iter().all(|jobs| jobs == expected))
        };
        let claims = |member: usize, meeting: usize| seen[member][meeting].1.1.as_slice();
        (0..3).for_each(|m| jobs(m, 0, &[40, 40, 40]));
        each_once(&[claims(0, 0), claims(1, 0), claims(2, 0)], 40);
        (0..2).for_each(|m| jobs(m, 1, &[40]));
        jobs(2, 1, &[8]);
        each_once(&[claims(0, 1)], 40);
        each_once(&[claims(1, 1)], 40);
        each_once(&[claims(2, 1)], 8);
        (0..2).for_each(|m| jobs(m, 2, &[40, 40]));
        each_once(&[claims(0, 2), claims(1, 2)], 40);
        assert_eq!(team.state.lock().unwrap().seats, 8);
    }

    /// A member that stalls in its first claim (as a core taken by another
    /// tenant does) leaves the rest of its block to the other, which takes
    /// it from the back, piece by piece: every unit is computed once, most
    /// by the member that did not stall.
    #[test]
    fn a_member_takes_over_the_block_of_one_that_stalls() {
        let team = Team::<u32>::new(2);
        let units = 2000;
        let stalled = AtomicBool::new(false);
        let claims: Vec<Vec<Claim>> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..2)
                .map(|me| {
                    let (team, stalled) = (&team, &stalled);
                    scope.spawn(move || {
                        let _leaving = Leaving(team, me);
                        let got = Mutex::new(Vec::new());
                        team.meet(me, units, |_, claim| {
                            if got.lock().unwrap().is_empty() {
                                match me {
                                    // Member 0 starts once member 1 has
                                    // claimed, and has stalled;
                                    0 => wait_for(|| stalled.load(Ordering::Acquire)),
                                    // which stays stalled until its block
                                    // is empty.
                                    _ => {
                                        stalled.store(true, Ordering::Release);
                                        wait_for(|| unpack(team.blocks[1].load(Ordering::Acquire)).is_empty());
                                    }
                                }
                            }
                            got.lock().unwrap().push(claim);
                        });
                        got.into_inner().unwrap()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        each_once(&[&claims[0], &claims[1]], units as usize);
        let computed = |c: &[Claim]| c.iter().map(|c| c.units.len()).sum::<usize>();
        // Member 1's first claim is a quarter of its block; the other takes
        // all the rest while it stalls.
        assert_eq!(computed(&claims[1]), 250);
        assert_eq!(computed(&claims[0]), 1750);
        // Its own block it claimed from the front, shrinking pieces seeing
        // the block's end; the other's from the back, a piece at a time.
        assert_eq!(
            claims[0][0],
            Claim {
                units: 0..250,
                ahead: 1000
            }
        );
        let stolen: Vec<&Claim> = claims[0].iter().filter(|c| c.units.start >= 1000).collect();
        assert!(stolen.iter().all(|c| c.units.len() <= PIECE && c.ahead == c.units.end));
        assert_eq!(stolen[0].units, 1996..2000);
    }

    /// A member that panics inside a meeting never finishes what it
    /// claimed; the others stop waiting for it and fail too, rather than
    /// wait for ever. (They compute only once it has claimed, so that none
    /// takes its block first.)
    #[test]
    fn a_member_failing_inside_a_meeting_fails_the_others() {
        let team = Team::<u32>::new(3);
        let claimed = AtomicBool::new(false);
        let results = three(&team, |me| {
            team.meet(me, 12, |_, _| match me {
                1 => {
                    claimed.store(true, Ordering::Release);
                    panic!("member 1 fails")
                }
                _ => wait_for(|| claimed.load(Ordering::Acquire)),
            })
        });
        assert!(results.iter().all(Result::is_err));
    }
}
