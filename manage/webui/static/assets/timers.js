// Periodic refreshes that belong to the page on screen: the router stops
// them all when it shows another page.

let timers = [];

// every runs fn every msec while the current page is shown. A failed
// refresh keeps the page as it is (the next one may work).
export function every(msec, fn) {
  timers.push(setInterval(() => Promise.resolve().then(fn).catch((err) => console.warn('refresh failed:', err.message)), msec));
}

// stopAll ends the refreshes of the page being left.
export function stopAll() {
  for (const t of timers) clearInterval(t);
  timers = [];
}
