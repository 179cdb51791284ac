using Backprop.Training;

// Train a small classifier on the iris table (4 measurements → 3 species), save it, and use it.
var job = new TrainingJob
{
    Data = Path.Combine(AppContext.BaseDirectory, "iris.csv"),
    Layers = [4, 16, 3],
    Options = new TrainOptions { Epochs = 60, BatchSize = 16, LearningRate = 0.01, Seed = 1 },
};
var run = TrainingRun<float>.Create(job);
var result = run.Run();
run.SaveModel("iris.safetensors");

var model = ModelFile.Load<float>("iris.safetensors");
Console.WriteLine($"test accuracy {result.TestAccuracy:P1} after {result.History.Count} epochs; classes {string.Join(", ", model.LabelNames)}");
