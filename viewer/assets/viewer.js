// her2wsi slide viewer: the slide as Deep Zoom tiles, the model's
// attention per patch as an overlay (viridis, this slide's min to max).
"use strict";
(function () {
  const body = document.body;
  const mpp = parseFloat(body.dataset.mpp) || 0;
  const viewer = OpenSeadragon({
    id: "osd",
    prefixUrl: "/viewer/openseadragon/images/",
    tileSources: body.dataset.dzi,
    showNavigator: true,
    drawer: "canvas", // keeps imageSmoothingEnabled: each patch one sharp cell
    imageSmoothingEnabled: false,
    gestureSettingsMouse: { clickToZoom: false },
  });
  const viridis = [[68, 1, 84], [72, 40, 120], [62, 73, 137], [49, 104, 142], [38, 130, 142],
    [31, 158, 137], [53, 183, 121], [110, 206, 88], [181, 222, 43], [253, 231, 37]];
  function colour(t) {
    t = Math.min(1, Math.max(0, t)) * (viridis.length - 1);
    const i = Math.min(viridis.length - 2, Math.floor(t)), f = t - i;
    return viridis[i].map((c, k) => Math.round(c + f * (viridis[i + 1][k] - c)));
  }
  const opacity = document.getElementById("opacity");
  const toggle = document.getElementById("overlay");
  const info = document.getElementById("info");
  let overlay = null, cells = null, P = 0, ox = 0, oy = 0, cols = 0;
  function applyOpacity() {
    if (overlay) overlay.setOpacity(toggle.checked ? parseFloat(opacity.value) : 0);
  }
  opacity.addEventListener("input", applyOpacity);
  toggle.addEventListener("change", applyOpacity);

  function addOverlay(att) {
    const base = viewer.world.getItemAt(0);
    if (!base || !att.patches || !att.patches.length) {
      info.textContent = "no attention for this slide";
      return;
    }
    const size = base.getContentSize();
    P = att.patch_size_level0;
    ox = Math.min(...att.patches.map(p => p[0])) % P;
    oy = Math.min(...att.patches.map(p => p[1])) % P;
    cols = Math.ceil((size.x - ox) / P);
    const rows = Math.ceil((size.y - oy) / P);
    const canvas = document.createElement("canvas");
    canvas.width = cols; canvas.height = rows;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(cols, rows);
    cells = new Map();
    att.patches.forEach((p, i) => {
      const c = Math.floor((p[0] - ox) / P), r = Math.floor((p[1] - oy) / P);
      if (c < 0 || r < 0 || c >= cols || r >= rows) return;
      cells.set(r * cols + c, i);
      const [R, G, B] = colour(p[2]);
      const o = 4 * (r * cols + c);
      img.data[o] = R; img.data[o + 1] = G; img.data[o + 2] = B; img.data[o + 3] = 255;
    });
    ctx.putImageData(img, 0, 0);
    viewer.addTiledImage({
      tileSource: { type: "image", url: canvas.toDataURL("image/png") },
      x: ox / size.x, y: oy / size.x, width: cols * P / size.x,
      opacity: parseFloat(opacity.value),
      success: e => { overlay = e.item; applyOpacity(); },
    });
    if (att.prediction) {
      const probs = (att.probabilities || []).map(p => p.toFixed(3)).join(" / ");
      document.getElementById("prediction").innerHTML = "";
      const s = document.createElement("strong");
      s.textContent = "HER2 " + att.prediction;
      document.getElementById("prediction").append(s, probs ? " (0 / 1+ / 2+ / 3+: " + probs + ")" : "");
    }
    // showAt: the patch under level-0 point pt (a click, or #at=X,Y in
    // the address, which also links to a patch).
    function showAt(pt) {
      const c = Math.floor((pt.x - ox) / P), r = Math.floor((pt.y - oy) / P);
      const i = c >= 0 && c < cols && r >= 0 ? cells.get(r * cols + c) : undefined;
      if (i === undefined) {
        info.textContent = "(" + Math.round(pt.x) + ", " + Math.round(pt.y) + "): no patch";
        return;
      }
      const p = att.patches[i];
      info.textContent = "patch " + i + " at (" + p[0] + ", " + p[1] + "), attention " + p[2].toFixed(3);
    }
    viewer.addHandler("canvas-click", e => {
      if (e.quick) showAt(base.viewerElementToImageCoordinates(e.position));
    });
    const m = /^#at=(\d+),(\d+)$/.exec(location.hash);
    if (m) showAt({ x: +m[1], y: +m[2] });
  }

  function scaleBar() {
    const el = document.getElementById("scale"), base = viewer.world.getItemAt(0);
    if (!mpp || !base) return;
    const zoom = base.viewportToImageZoom(viewer.viewport.getZoom(true)); // screen px per level-0 px
    const umPerPx = mpp / zoom;
    let um = Math.pow(10, Math.floor(Math.log10(150 * umPerPx)));
    for (const m of [5, 2]) if (m * um / umPerPx <= 150) { um *= m; break; }
    el.innerHTML = "";
    const bar = document.createElement("div");
    bar.style.width = Math.round(um / umPerPx) + "px";
    el.append(bar, um >= 1000 ? (um / 1000) + " mm" : um + " µm");
  }
  viewer.addHandler("update-viewport", scaleBar);

  viewer.addOnceHandler("open", () => {
    scaleBar();
    fetch(body.dataset.attention, { credentials: "same-origin" })
      .then(r => r.ok ? r.json() : Promise.reject(r.status))
      .then(addOverlay)
      .catch(() => { info.textContent = "no attention for this slide (run the predict stage)"; });
  });
})();
