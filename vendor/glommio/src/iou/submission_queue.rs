use std::{fmt, io, marker::PhantomData, ptr::NonNull, time::Duration};

use super::{resultify, IoUring, SQEs, SQE};
use crate::uring_sys;

/// The queue of pending IO events.
///
/// Each element is a [`SQE`](crate::sqe::SQE).
/// By default, events are processed in parallel after being submitted.
/// You can modify this behavior for specific events using event
/// [`SubmissionFlags`](crate::sqe::SubmissionFlags).
///
/// # Examples
/// Consider a read event that depends on a successful write beforehand.
///
/// We reify this relationship by using `IO_LINK` to link these events.
pub struct SubmissionQueue<'ring> {
    ring: NonNull<uring_sys::io_uring>,
    _marker: PhantomData<&'ring mut IoUring>,
}

impl<'ring> SubmissionQueue<'ring> {
    pub(crate) fn new(ring: &'ring IoUring) -> SubmissionQueue<'ring> {
        SubmissionQueue {
            ring: NonNull::from(&ring.ring),
            _marker: PhantomData,
        }
    }

    /// Returns new [`SQE`s](crate::sqe::SQE) until the queue size is reached.
    /// After that, will return `None`.
    pub fn prepare_sqe(&mut self) -> Option<SQE<'_>> {
        unsafe {
            let sqe = uring_sys::io_uring_get_sqe(self.ring.as_mut());
            if !sqe.is_null() {
                uring_sys::io_uring_prep_nop(sqe);
                Some(SQE::new(&mut *sqe))
            } else {
                None
            }
        }
    }

    /// Returns the next `count` [`SQE`]s which can be prepared to submit as an
    /// iterator.
    ///
    /// See the [`SQEs`] type for more information about how these multiple SQEs
    /// can be used.
    pub fn prepare_sqes(&mut self, count: u32) -> Option<SQEs<'_>> {
        unsafe {
            if self.space_left() >= count {
                Some(SQEs::new(self.ring.as_mut(), count))
            } else {
                None
            }
        }
    }

    /// Submit all events in the queue. Returns the number of submitted events.
    ///
    /// If this function encounters any IO errors an
    /// [`io::Error`](std::io::Result) variant is returned.
    pub fn submit(&mut self) -> io::Result<u32> {
        resultify(unsafe { uring_sys::io_uring_submit(self.ring.as_ptr()) })
    }

    pub fn submit_and_wait(&mut self, wait_for: u32) -> io::Result<u32> {
        resultify(unsafe { uring_sys::io_uring_submit_and_wait(self.ring.as_ptr(), wait_for as _) })
    }

    pub fn submit_and_wait_with_timeout(
        &mut self,
        wait_for: u32,
        duration: Duration,
    ) -> io::Result<u32> {
        let ts = uring_sys::__kernel_timespec {
            tv_sec: duration.as_secs() as _,
            tv_nsec: duration.subsec_nanos() as _,
        };

        loop {
            if let Some(mut sqe) = self.prepare_sqe() {
                sqe.clear();
                unsafe {
                    sqe.prep_timeout(&ts, 0, crate::iou::sqe::TimeoutFlags::empty());
                    sqe.set_user_data(uring_sys::LIBURING_UDATA_TIMEOUT);
                    return resultify(uring_sys::io_uring_submit_and_wait(
                        self.ring.as_ptr(),
                        wait_for as _,
                    ));
                }
            }

            self.submit()?;
        }
    }

    /// herald: submits the prepared SQEs and waits for `wait_for` CQEs, or at most `timeout`,
    /// in one `io_uring_enter` (`IORING_ENTER_EXT_ARG`). Returns how many SQEs the kernel
    /// took; the kernel waits only if it took them all, and reports a timeout or an
    /// interrupted wait as that count too (callers look at the CQ). Without `timeout`, or on
    /// a kernel without `EXT_ARG` (before 5.11), it is [`submit_and_wait`](Self::submit_and_wait).
    pub fn submit_and_wait_at_most(
        &mut self,
        wait_for: u32,
        timeout: Option<Duration>,
    ) -> io::Result<u32> {
        let (fd, features) = unsafe { (self.ring.as_ref().ring_fd, self.ring.as_ref().features) };
        let Some(d) = timeout.filter(|_| features & uring_sys::IORING_FEAT_EXT_ARG != 0) else {
            return self.submit_and_wait(wait_for);
        };
        let ts = uring_sys::__kernel_timespec {
            tv_sec: d.as_secs() as _,
            tv_nsec: d.subsec_nanos() as _,
        };
        let arg = uring_sys::io_uring_getevents_arg {
            sigmask: 0,
            sigmask_sz: 8, // _NSIG / 8, as liburing passes it
            min_wait_usec: 0,
            ts: &ts as *const _ as u64,
        };
        let ret = unsafe {
            let to_submit = uring_sys::__io_uring_flush_sq(self.ring.as_ptr());
            uring_sys::syscalls::io_uring_enter2(
                fd,
                to_submit as libc::c_uint,
                wait_for,
                uring_sys::IORING_ENTER_GETEVENTS | uring_sys::IORING_ENTER_EXT_ARG,
                &arg as *const _ as *const libc::c_void,
                std::mem::size_of_val(&arg),
            )
        };
        // A raw syscall: -1 and errno, not liburing's negated errno (so not `resultify`).
        if ret < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(ret as u32)
        }
    }

    pub fn ready(&self) -> u32 {
        unsafe { uring_sys::io_uring_sq_ready(self.ring.as_ptr()) }
    }

    pub fn space_left(&self) -> u32 {
        unsafe { uring_sys::io_uring_sq_space_left(self.ring.as_ptr()) }
    }
}

impl fmt::Debug for SubmissionQueue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fd = unsafe { self.ring.as_ref().ring_fd };
        f.debug_struct(std::any::type_name::<Self>())
            .field("fd", &fd)
            .finish()
    }
}

unsafe impl<'ring> Send for SubmissionQueue<'ring> {}
unsafe impl<'ring> Sync for SubmissionQueue<'ring> {}
