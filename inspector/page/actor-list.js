// A virtualised actor list: only the rows in view (plus a few) exist in the
// DOM, and rows are fetched a page at a time as they scroll into view, so ten
// thousand actors cost what thirty do.
const ROW_PX = 24;
const PAGE_ROWS = 200;
const OVERSCAN_ROWS = 8;

export class ActorList {
  constructor(container, fetchPage, onSelect, onTotal) {
    this.container = container;
    this.spacer = container.querySelector('.vlist-spacer');
    this.fetchPage = fetchPage;
    this.onSelect = onSelect;
    this.onTotal = onTotal;
    this.pages = new Map();
    this.loading = new Set();
    this.total = 0;
    this.rows = new Map();
    this.selected = null;
    this.generation = 0;
    this.frame = 0;
    container.addEventListener('scroll', () => this.schedule());
  }

  /** Starts over (a new filter): drops cached pages and loads the first one. */
  async reset() {
    this.generation++;
    this.pages.clear();
    this.loading.clear();
    for (const row of this.rows.values()) row.remove();
    this.rows.clear();
    this.container.scrollTop = 0;
    await this.load(0);
  }

  /** Reloads the pages in view (the actors changed), keeping the scroll position. */
  async refresh() {
    const first = Math.floor(this.container.scrollTop / ROW_PX);
    const generation = ++this.generation;
    this.pages.clear();
    this.loading.clear();
    await this.load(Math.floor(first / PAGE_ROWS), generation);
  }

  async load(page, generation = this.generation) {
    if (this.pages.has(page) || this.loading.has(page)) return;
    this.loading.add(page);
    try {
      const result = await this.fetchPage(page * PAGE_ROWS, PAGE_ROWS);
      if (generation !== this.generation) return;
      this.pages.set(page, result.rows);
      if (result.total !== this.total) {
        this.total = result.total;
        this.spacer.style.height = `${this.total * ROW_PX}px`;
        this.onTotal(this.total);
      }
      this.render();
    } finally {
      this.loading.delete(page);
    }
  }

  schedule() {
    if (this.frame !== 0) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render();
    });
  }

  render() {
    const top = this.container.scrollTop;
    const first = Math.max(0, Math.floor(top / ROW_PX) - OVERSCAN_ROWS);
    const last = Math.min(this.total - 1, Math.ceil((top + this.container.clientHeight) / ROW_PX) + OVERSCAN_ROWS);
    const wanted = new Set();
    for (let index = first; index <= last; index++) {
      const page = Math.floor(index / PAGE_ROWS);
      const data = this.pages.get(page)?.[index - page * PAGE_ROWS];
      if (data === undefined) {
        void this.load(page);
        continue;
      }
      wanted.add(index);
      let row = this.rows.get(index);
      if (row === undefined || row.dataset.id !== data.id) {
        row?.remove();
        row = this.makeRow(data, index);
        this.rows.set(index, row);
        this.container.appendChild(row);
      } else if (row.dataset.state !== data.state) {
        row.dataset.state = data.state;
        row.children[2].textContent = data.state;
      }
    }
    for (const [index, row] of this.rows) {
      if (wanted.has(index)) continue;
      row.remove();
      this.rows.delete(index);
    }
  }

  makeRow(data, index) {
    const row = document.createElement('div');
    row.className = 'vrow';
    row.dataset.id = data.id;
    row.dataset.state = data.state;
    row.dataset.testid = 'actor-row';
    row.setAttribute('data-testid', 'actor-row');
    row.style.transform = `translateY(${index * ROW_PX}px)`;
    for (const value of [data.id, data.kind, data.state, data.geozone]) {
      const cell = document.createElement('span');
      cell.textContent = value;
      row.appendChild(cell);
    }
    row.firstChild.className = 'id';
    if (data.id === this.selected) row.classList.add('selected');
    row.addEventListener('click', () => {
      this.selected = data.id;
      for (const other of this.rows.values()) other.classList.toggle('selected', other.dataset.id === data.id);
      this.onSelect(data);
    });
    return row;
  }
}
