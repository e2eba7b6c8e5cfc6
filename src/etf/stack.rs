//! A stack whose first `N` entries live inline (on the caller's stack frame), spilling
//! to a `Vec` beyond. The decoder and encoder keep their explicit stacks in one, so that
//! ordinary (shallow) terms cost no allocation for the machinery that makes deep terms
//! safe.

pub(crate) struct Stack<T, const N: usize> {
    inline: [Option<T>; N],
    len: usize,
    spill: Vec<T>,
}

impl<T, const N: usize> Stack<T, N> {
    pub(crate) fn new() -> Self {
        Stack {
            inline: std::array::from_fn(|_| None),
            len: 0,
            spill: Vec::new(),
        }
    }

    /// Number of entries.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len + self.spill.len()
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    #[inline]
    pub(crate) fn push(&mut self, value: T) {
        match self.inline.get_mut(self.len) {
            Some(slot) if self.spill.is_empty() => {
                *slot = Some(value);
                self.len += 1;
            }
            _ => self.spill.push(value),
        }
    }

    #[inline]
    pub(crate) fn pop(&mut self) -> Option<T> {
        if let Some(v) = self.spill.pop() {
            return Some(v);
        }
        self.len = self.len.checked_sub(1)?;
        self.inline.get_mut(self.len)?.take()
    }

    #[inline]
    pub(crate) fn last_mut(&mut self) -> Option<&mut T> {
        if !self.spill.is_empty() {
            return self.spill.last_mut();
        }
        self.inline.get_mut(self.len.checked_sub(1)?)?.as_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::Stack;

    #[test]
    fn spills_and_comes_back_in_order() {
        let mut s: Stack<u32, 4> = Stack::new();
        for i in 0..10 {
            s.push(i);
        }
        assert_eq!(s.len(), 10);
        *s.last_mut().unwrap() += 100;
        let mut out = Vec::new();
        while let Some(v) = s.pop() {
            out.push(v);
        }
        assert_eq!(out, [109, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
        assert!(s.is_empty() && s.pop().is_none() && s.last_mut().is_none());
    }
}
