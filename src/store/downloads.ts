// Saving a file the user asked for (an adapter, a CSV): a blob URL clicked as a download link. Swappable so the
// slices that trigger downloads run in Node tests.
export type Downloader = (blob: Blob, fileName: string) => void;

function browserDownload(blob: Blob, fileName: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = fileName;
  a.style.display = 'none';
  document.body.append(a);
  a.click();
  a.remove();
  // The download has started by the next tasks; the URL only needs to outlive the click.
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}

let downloader: Downloader = browserDownload;

export function setDownloader(d: Downloader | null): void {
  downloader = d ?? browserDownload;
}

export function saveFile(data: Uint8Array | string, fileName: string, type: string): void {
  const part = typeof data === 'string' ? data : (data as Uint8Array<ArrayBuffer>);
  downloader(new Blob([part], { type }), fileName);
}

/** A Blob the worker built (a merged model's .zip): saved as it is, never copied into one array. */
export function saveBlob(blob: Blob, fileName: string): void {
  downloader(blob, fileName);
}
