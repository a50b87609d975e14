// Map labels that do not overlap: labels are placed in priority order (the caller's order: worst first) and
// any whose box meets one already placed is hidden. Leaflet places labels at their anchors; this only decides
// which to show, so a label never covers another's text whatever the zoom.

/** `items`: [{ el, keep }] in priority order; `keep` elements are always shown. Returns how many were hidden. */
export function declutter(items, pad = 2) {
  const placed = [];
  let hidden = 0;
  for (const { el } of items) el.classList.remove('clutter');
  for (const { el, keep } of items) {
    if (!el.isConnected || el.classList.contains('hidden')) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const box = { l: r.left - pad, t: r.top - pad, r: r.right + pad, b: r.bottom + pad };
    const hit = placed.some((p) => box.l < p.r && box.r > p.l && box.t < p.b && box.b > p.t);
    if (hit && !keep) {
      el.classList.add('clutter');
      hidden += 1;
    } else {
      placed.push(box);
    }
  }
  return hidden;
}
