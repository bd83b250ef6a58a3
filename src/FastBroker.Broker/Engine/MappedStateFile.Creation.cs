using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;

namespace FastBroker.Engine;

// Making a state file: padding one found short, writing a new one under its temporary name and renaming it into place,
// and removing what an interrupted creation left.
internal sealed unsafe partial class MappedStateFile
{
    /// <summary>Pads a file found shorter than <paramref name="length"/> with zeros; one longer is refused.</summary>
    private static void Pad(FileStream fs, string path, long length)
    {
        if (fs.Length > length)
        {
            throw new InvalidDataException($"state file {path} is {fs.Length} bytes, expected {length}");
        }

        if (fs.Length < length)
        {
            // Writing real zeros (not a sparse extend) so a full disk fails here, not as SIGBUS on first store.
            fs.Seek(0, SeekOrigin.End);
            WriteZeros(fs, length - fs.Length, new byte[(int)Math.Min(64 * 1024, length)]);
            fs.Flush(flushToDisk: true);
        }
    }

    /// <summary>
    /// Writes the new file <paramref name="path"/> (<paramref name="header"/>, then zeros to <paramref name="length"/>;
    /// real zeros, not a sparse extend, so a full disk fails here, not as SIGBUS on a first store) under its temporary
    /// name, flushes it to disk (its data before its name) and renames it into place. False when a file took the name
    /// meanwhile (it is opened instead) or the temporary file was removed before its rename (nothing has the name: the
    /// open finds it missing and makes it anew); what it wrote is removed when it fails.
    /// </summary>
    private static bool Create(string path, long length, ReadOnlySpan<long> header, StateFileFlusher? flusher)
    {
        var temporary = path + CreatingSuffix;
        try
        {
            using var fs = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None);
            var buffer = new byte[(int)Math.Min(64 * 1024, length)];
            for (var i = 0; i < header.Length; i++)
            {
                BinaryPrimitives.WriteInt64LittleEndian(buffer.AsSpan(i * 8), header[i]);
            }

            var first = (int)Math.Min(buffer.Length, length);
            fs.Write(buffer, 0, first);
            Array.Clear(buffer);
            WriteZeros(fs, length - first, buffer);
            fs.Flush(flushToDisk: true);
        }
        catch (Exception)
        {
            DeleteQuietly(temporary);
            throw;
        }

        return Rename(temporary, path, flusher);
    }

    /// <summary>
    /// Writes the new file <paramref name="path"/> holding <paramref name="image"/> as <see cref="Create"/> writes one
    /// (under its temporary name, flushed, renamed into place). False when a file took the name meanwhile (left as it
    /// is) or the temporary file was removed before its rename.
    /// </summary>
    private static bool CreateFrom(string path, ReadOnlySpan<byte> image, StateFileFlusher? flusher)
    {
        var temporary = path + CreatingSuffix;
        try
        {
            using var fs = new FileStream(temporary, FileMode.Create, FileAccess.Write, FileShare.None);
            fs.Write(image);
            fs.Flush(flushToDisk: true);
        }
        catch (Exception)
        {
            DeleteQuietly(temporary);
            throw;
        }

        return Rename(temporary, path, flusher);
    }

    /// <summary>
    /// Renames the whole new file <paramref name="temporary"/> to <paramref name="path"/>; false when another file took
    /// the name first or <paramref name="temporary"/> is gone (see <see cref="Create"/>). A rename refused while neither
    /// holds (the name taken and freed again meanwhile) is tried once more; one refused again is thrown naming both.
    /// </summary>
    private static bool Rename(string temporary, string path, StateFileFlusher? flusher)
    {
        try
        {
            flusher?.Creating?.Invoke(path);
        }
        catch (Exception)
        {
            DeleteQuietly(temporary);
            throw;
        }

        for (var attempt = 1; ; attempt++)
        {
            try
            {
                File.Move(temporary, path, overwrite: false);
                return true;
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another opener's file took the name: it was made whole before it got it, as this one was.
                DeleteQuietly(temporary);
                return false;
            }
            catch (IOException) when (!File.Exists(temporary))
            {
                // Removed before its rename (an operator removing the name's files while a client subscribes or joins
                // under it): nothing has the name, and the open makes it anew, as a file removed before its open.
                return false;
            }
            catch (IOException) when (attempt == 1)
            {
                // Neither took nor removed: try once more (the name was taken and freed again between).
            }
            catch (IOException e)
            {
                DeleteQuietly(temporary);
                throw new IOException($"{path} could not be renamed into place from {temporary}, which was written whole: {e.Message}", e);
            }
            catch (Exception)
            {
                DeleteQuietly(temporary);
                throw;
            }
        }
    }

    private static void WriteZeros(FileStream fs, long count, byte[] zeros)
    {
        while (count > 0)
        {
            var n = (int)Math.Min(zeros.Length, count);
            fs.Write(zeros, 0, n);
            count -= n;
        }
    }

    /// <summary>
    /// Removes the files of <paramref name="directory"/> left by creations a crash interrupted before their rename
    /// (<see cref="CreatingSuffix"/>): nothing refers to them, and the next creation of the same name writes its own.
    /// Called when the broker opens, before any state file is created; returns how many were removed.
    /// </summary>
    public static int RemoveLeftovers(string directory)
    {
        var removed = 0;
        foreach (var leftover in Directory.EnumerateFiles(directory, "*" + CreatingSuffix))
        {
            if (DeleteQuietly(leftover))
            {
                removed++;
            }
        }

        return removed;
    }

    private static bool DeleteQuietly(string path)
    {
        try
        {
            File.Delete(path);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    private static void Close(MemoryMappedFile? map, FileStream? stream)
    {
        map?.Dispose();
        stream?.Dispose();
    }

    private static void SyncDirectory(string directory)
    {
        try
        {
            FastBroker.Journal.DurableFile.SyncDirectory(directory);
        }
        catch (FastBroker.Journal.JournalException e)
        {
            throw new IOException(e.Message, e);
        }
    }
}
