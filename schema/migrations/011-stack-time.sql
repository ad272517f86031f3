-- 011-stack-time.sql — schema version 11: when a block's stack was taken.
-- stack_t: ns after the block's start (t) when the collector's watchdog copied the loop thread's
-- stack, NULL: unknown (an older collector, or no stack). The watchdog asks for the stack half a
-- threshold into a stuck step; on a machine short of CPU it may get it only much later, when the
-- loop thread can be past the blocking call and on in the same step, and the stack then names
-- that later code. With stack_t the API, the page and the toolbar panel can say how late it was.
ALTER TABLE blocks ADD COLUMN stack_t INTEGER;
