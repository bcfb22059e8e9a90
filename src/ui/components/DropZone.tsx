import { useId, useRef, useState, type ReactNode } from 'react';

export interface DropZoneProps {
  /** What to drop, in words: the zone's accessible name. */
  label: string;
  /** The picker button's text. */
  pickLabel: string;
  accept?: string;
  /** Pick a folder (input webkitdirectory) rather than files. */
  directory?: boolean;
  /** Called during the drop event itself (DataTransfer items are readable only then). */
  onDrop(transfer: DataTransfer): void;
  onPick(files: File[]): void;
  testId?: string;
  children?: ReactNode;
}

/** A region that takes real drag-and-drop, with a keyboard-reachable picker button inside it. */
export function DropZone({ label, pickLabel, accept, directory, onDrop, onPick, testId, children }: DropZoneProps) {
  const input = useRef<HTMLInputElement>(null);
  const [over, setOver] = useState(false);
  const hintId = useId();
  // webkitdirectory is not in React's typings; set as a plain attribute.
  const directoryProps = directory ? ({ webkitdirectory: '', directory: '' } as Record<string, string>) : {};
  return (
    <div
      className={`dropzone${over ? ' over' : ''}`}
      data-testid={testId}
      role="group"
      aria-label={label}
      aria-describedby={hintId}
      onDragEnter={(e) => {
        e.preventDefault();
        setOver(true);
      }}
      onDragOver={(e) => {
        e.preventDefault();
        e.dataTransfer.dropEffect = 'copy';
      }}
      onDragLeave={(e) => {
        if (!e.currentTarget.contains(e.relatedTarget as Node | null)) setOver(false);
      }}
      onDrop={(e) => {
        e.preventDefault();
        setOver(false);
        onDrop(e.dataTransfer);
      }}
    >
      <p id={hintId}>{label}</p>
      <button type="button" onClick={() => input.current?.click()}>
        {pickLabel}
      </button>
      <input
        ref={input}
        type="file"
        hidden
        accept={accept}
        multiple={directory}
        aria-label={pickLabel}
        {...directoryProps}
        onChange={(e) => {
          const files = Array.from(e.currentTarget.files ?? []);
          e.currentTarget.value = '';
          if (files.length > 0) onPick(files);
        }}
      />
      {children}
    </div>
  );
}
