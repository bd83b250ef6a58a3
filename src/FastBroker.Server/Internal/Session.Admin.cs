using System.Buffers;
using System.Text;
using System.Text.Json;
using FastBroker.Protocol;

namespace FastBroker.Server.Internal;

/// <summary>ADMIN: JSON documents about topics, groups and the server (schemas in docs/protocol.md, "Admin documents").</summary>
internal sealed partial class Session
{
    internal void OnAdmin(in FrameHeader header, in AdminFrame frame)
    {
        if (!EnsureOpen(header) || !EnsureGranted(header, ProtocolFeatures.Admin, "ADMIN"))
        {
            return;
        }

        var argument = Encoding.UTF8.GetString(frame.Argument);
        var id = header.RequestId;
        var buffer = new ArrayBufferWriter<byte>(4096);
        try
        {
            using (var json = new Utf8JsonWriter(buffer))
            {
                var snapshot = _broker.GetSnapshot();
                switch (frame.Query)
                {
                    case AdminQuery.ListTopics:
                        TopicPattern? filter = null;
                        if (argument.Length > 0 && !TopicPattern.TryParse(argument, out filter, out var why))
                        {
                            SendError(id, ErrorCode.InvalidName, $"ADMIN: invalid topic pattern '{ClientText.Quote(argument)}': {why}");
                            return;
                        }

                        AdminDocuments.WriteTopicList(json, snapshot, filter);
                        break;
                    case AdminQuery.TopicStats:
                        if (!AdminDocuments.WriteTopicStats(json, snapshot, argument))
                        {
                            SendError(id, ErrorCode.UnknownTopic, $"ADMIN: topic '{ClientText.Quote(argument)}' does not exist");
                            return;
                        }

                        break;
                    case AdminQuery.ListGroups:
                        AdminDocuments.WriteGroupList(json, snapshot, argument.Length == 0 ? null : argument);
                        break;
                    default:
                        AdminDocuments.WriteServerStats(json, _server, snapshot);
                        break;
                }
            }

            SendAdminResult(id, frame.Query, buffer.WrittenSpan);
        }
        catch (Exception e)
        {
            SendError(id, MapException(e, "ADMIN"), $"ADMIN: {e.Message}");
        }
    }
}
