// Small canvas charts for the HMI (line charts with limit lines and bands, grouped bars).
// Written for this project; no dependencies.

export const PALETTE = ["#1f7ae0", "#e0611f", "#1e9e5a", "#8e1b6e", "#d98b00", "#0f3d5e", "#6b7685"];
const GRID = "#e3e7ed";
const AXIS_TEXT = "#6b7685";
const FONT = '11px "DejaVu Sans", system-ui, sans-serif';

function prepare(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = Math.max(50, canvas.clientWidth);
  const h = Math.max(50, canvas.clientHeight);
  if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  ctx.font = FONT;
  return { ctx, w, h };
}

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  const nice = norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10;
  return nice * mag;
}

export function formatNumber(v, digits = 3) {
  if (v === null || v === undefined || Number.isNaN(v)) return "–";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
  if (a >= 1000) return v.toFixed(0);
  return Number(v.toPrecision(digits)).toString();
}

function timeLabel(ms) {
  const d = new Date(ms);
  return d.toTimeString().slice(0, 8);
}

// A line chart of one or more series over x (time in ms, or step numbers).
export class LineChart {
  constructor(canvas, options = {}) {
    this.canvas = canvas;
    this.maxPoints = options.maxPoints || 600;
    this.xIsTime = options.xIsTime !== false;
    this.series = new Map();
    this.low = null;
    this.high = null;
    this.bandLow = null;
    this.bandHigh = null;
    this.pending = false;
    if (typeof ResizeObserver !== "undefined") {
      new ResizeObserver(() => this.schedule()).observe(canvas);
    }
  }

  setLimits(low, high) {
    this.low = low ?? null;
    this.high = high ?? null;
    this.schedule();
  }

  setSeries(name, points, color) {
    const existing = this.series.get(name);
    this.series.set(name, {
      color: color || (existing && existing.color) || PALETTE[this.series.size % PALETTE.length],
      points: points.slice(-this.maxPoints),
    });
    this.schedule();
  }

  push(name, x, y) {
    if (typeof y !== "number" || !Number.isFinite(y)) return;
    let s = this.series.get(name);
    if (!s) {
      s = { color: PALETTE[this.series.size % PALETTE.length], points: [] };
      this.series.set(name, s);
    }
    const last = s.points[s.points.length - 1];
    if (last && last[0] === x) last[1] = y;
    else s.points.push([x, y]);
    if (s.points.length > this.maxPoints) s.points.splice(0, s.points.length - this.maxPoints);
    this.schedule();
  }

  setBand(low, high) {
    this.bandLow = low;
    this.bandHigh = high;
    this.schedule();
  }

  clear() {
    this.series.clear();
    this.bandLow = this.bandHigh = null;
    this.schedule();
  }

  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  draw() {
    const { ctx, w, h } = prepare(this.canvas);
    const pad = { l: 48, r: 10, t: 8, b: 20 };
    const all = [];
    for (const s of this.series.values()) all.push(...s.points);
    if (this.bandLow) all.push(...this.bandLow, ...this.bandHigh);
    if (all.length === 0) {
      ctx.fillStyle = AXIS_TEXT;
      ctx.fillText("waiting for data…", pad.l, h / 2);
      return;
    }
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const [x, y] of all) {
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
    for (const limit of [this.low, this.high]) {
      if (limit !== null && Number.isFinite(limit)) {
        // show a limit when it is near the data
        const span = Math.max(1e-9, y1 - y0, Math.abs(y1) * 0.05);
        if (limit >= y0 - span && limit <= y1 + span) {
          y0 = Math.min(y0, limit);
          y1 = Math.max(y1, limit);
        }
      }
    }
    if (x1 === x0) x1 = x0 + 1;
    if (y1 === y0) {
      const d = Math.abs(y0) * 0.05 || 1;
      y0 -= d;
      y1 += d;
    }
    const margin = (y1 - y0) * 0.08;
    y0 -= margin;
    y1 += margin;
    const X = (x) => pad.l + ((x - x0) / (x1 - x0)) * (w - pad.l - pad.r);
    const Y = (y) => pad.t + (1 - (y - y0) / (y1 - y0)) * (h - pad.t - pad.b);

    // grid and y labels
    const step = niceStep(y1 - y0, 4);
    ctx.strokeStyle = GRID;
    ctx.lineWidth = 1;
    ctx.fillStyle = AXIS_TEXT;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let v = Math.ceil(y0 / step) * step; v <= y1; v += step) {
      const y = Math.round(Y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(pad.l, y);
      ctx.lineTo(w - pad.r, y);
      ctx.stroke();
      ctx.fillText(formatNumber(v), pad.l - 6, y);
    }
    // x labels
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    const xs = this.xIsTime ? 4 : 5;
    for (let i = 0; i <= xs; i++) {
      const xv = x0 + ((x1 - x0) * i) / xs;
      const label = this.xIsTime ? timeLabel(xv) : formatNumber(Math.round(xv));
      ctx.fillText(label, Math.min(w - 24, Math.max(pad.l + 20, X(xv))), h - pad.b + 5);
    }
    // band
    if (this.bandLow && this.bandHigh && this.bandLow.length) {
      ctx.fillStyle = "rgba(31, 122, 224, 0.16)";
      ctx.beginPath();
      this.bandHigh.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
      for (let i = this.bandLow.length - 1; i >= 0; i--) ctx.lineTo(X(this.bandLow[i][0]), Y(this.bandLow[i][1]));
      ctx.closePath();
      ctx.fill();
    }
    // limits
    ctx.setLineDash([5, 4]);
    ctx.strokeStyle = "#d0342c";
    for (const limit of [this.low, this.high]) {
      if (limit !== null && limit >= y0 && limit <= y1) {
        const y = Math.round(Y(limit)) + 0.5;
        ctx.beginPath();
        ctx.moveTo(pad.l, y);
        ctx.lineTo(w - pad.r, y);
        ctx.stroke();
      }
    }
    ctx.setLineDash([]);
    // series
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    for (const s of this.series.values()) {
      if (!s.points.length) continue;
      ctx.strokeStyle = s.color;
      ctx.beginPath();
      s.points.forEach(([x, y], i) => (i ? ctx.lineTo(X(x), Y(y)) : ctx.moveTo(X(x), Y(y))));
      ctx.stroke();
      if (s.points.length === 1) {
        const [x, y] = s.points[0];
        ctx.fillStyle = s.color;
        ctx.beginPath();
        ctx.arc(X(x), Y(y), 3, 0, Math.PI * 2);
        ctx.fill();
      }
    }
    // legend
    if (this.series.size > 1) {
      ctx.textAlign = "left";
      ctx.textBaseline = "top";
      let lx = pad.l + 8;
      for (const [name, s] of this.series) {
        ctx.fillStyle = s.color;
        ctx.fillRect(lx, pad.t + 4, 10, 10);
        ctx.fillStyle = "#1c2430";
        ctx.fillText(name, lx + 14, pad.t + 3);
        lx += ctx.measureText(name).width + 30;
      }
    }
  }
}

// Grouped horizontal bars: one group per label, one bar per dataset. Values are drawn relative
// to the largest absolute value of each group, with the real value printed beside the bar.
export class BarChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.labels = [];
    this.datasets = [];
    if (typeof ResizeObserver !== "undefined") {
      new ResizeObserver(() => this.draw()).observe(canvas);
    }
  }

  set(labels, datasets) {
    this.labels = labels;
    this.datasets = datasets.map((d, i) => ({ color: PALETTE[i % PALETTE.length], ...d }));
    requestAnimationFrame(() => this.draw());
  }

  draw() {
    const { ctx, w, h } = prepare(this.canvas);
    if (!this.labels.length) return;
    const labelWidth = Math.min(170, w * 0.38);
    const legend = this.datasets.length > 1 ? 18 : 0;
    const groupH = (h - legend - 4) / this.labels.length;
    const barH = Math.max(3, Math.min(18, (groupH - 6) / Math.max(1, this.datasets.length)));
    const x0 = labelWidth + 6;
    const span = w - x0 - 70;
    ctx.textBaseline = "middle";
    this.labels.forEach((label, g) => {
      const top = legend + g * groupH;
      ctx.fillStyle = "#1c2430";
      ctx.textAlign = "right";
      ctx.fillText(label, labelWidth, top + groupH / 2);
      const values = this.datasets.map((d) => d.values[g]);
      const maxAbs = Math.max(1e-12, ...values.filter(Number.isFinite).map(Math.abs));
      this.datasets.forEach((d, i) => {
        const v = d.values[g];
        const y = top + (groupH - barH * this.datasets.length) / 2 + i * barH;
        const len = Number.isFinite(v) ? (Math.abs(v) / maxAbs) * span : 0;
        ctx.fillStyle = d.color;
        ctx.fillRect(x0, y + 1, Math.max(1, len), barH - 2);
        ctx.fillStyle = AXIS_TEXT;
        ctx.textAlign = "left";
        ctx.fillText(formatNumber(v), x0 + len + 4, y + barH / 2);
      });
    });
    if (legend) {
      let lx = x0;
      ctx.textAlign = "left";
      for (const d of this.datasets) {
        ctx.fillStyle = d.color;
        ctx.fillRect(lx, 3, 10, 10);
        ctx.fillStyle = "#1c2430";
        ctx.fillText(d.name, lx + 14, 8);
        lx += ctx.measureText(d.name).width + 30;
      }
    }
  }
}
